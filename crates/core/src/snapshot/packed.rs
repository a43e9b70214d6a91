//! The in-memory packed form of an order's snapshot and of its delivery history: one allocation
//! each, instead of a struct of some twenty options with a heap string per field (issue 15: the
//! memory of every tracked order). [`Snapshot`] stays the working type (merge, validation,
//! serialisation); [`super::OrderState`] keeps it packed and decodes it when it is needed.
//!
//! The packed form is never written anywhere: the changelog record, the deliveries header and
//! the request body are JSON of the decoded values, byte for byte as before. Its layout:
//!
//! - a snapshot with no field is empty (no allocation: the default state);
//! - else a presence bitmap of `ceil(fields / 8)` bytes, little-endian (bit `i` for the `i`-th
//!   field of `body_fields!`), then each present field in that order: strings as a LEB128 length
//!   and their UTF-8 bytes, unsigned integers LEB128, signed ones zigzag LEB128, `discount` and
//!   `priority` one byte, enums one byte (their declaration index), `dish_list` a LEB128 count
//!   and each dish the same way (a 2-byte bitmap of its fields, `properties` a 1-byte one);
//! - a delivery history is its entries, oldest first, each a status byte, the time LEB128 and
//!   the `Request-ID` as LEB128 (length + 1) and its bytes (0: none).
//!
//! The encoding is canonical (one byte string per value, and decoding gives the value back), so
//! comparing packed bytes compares snapshots, and the layouts of [`Snapshot`], [`Dish`] and
//! [`Properties`] are generated from their field lists ([`packed_struct!`]): a new field fails to
//! compile until it is packed.

use std::cell::RefCell;
use std::fmt;
use std::marker::PhantomData;

use serde::ser::{SerializeSeq, Serializer};
use serde::Serialize;

use super::order::Delivery;
use super::types::{
    Count, Dish, DishIn, DishType, Properties, PropertiesIn, Secret, Snapshot, SnapshotIn, Status,
    Text, Unit,
};

/// A cursor over packed bytes; every read is `None` past the end.
pub(super) struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    /// Read `bytes` from the start.
    pub(super) fn new(bytes: &'a [u8]) -> Self {
        Self { bytes }
    }

    /// Nothing is left.
    pub(super) fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// The next `n` bytes.
    pub(super) fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if n > self.bytes.len() {
            return None;
        }
        let (head, rest) = self.bytes.split_at(n);
        self.bytes = rest;
        Some(head)
    }

    /// The next byte.
    pub(super) fn byte(&mut self) -> Option<u8> {
        let (&b, rest) = self.bytes.split_first()?;
        self.bytes = rest;
        Some(b)
    }

    /// A LEB128 integer of at most 64 bits.
    pub(super) fn varint(&mut self) -> Option<u64> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            if shift == 63 && b > 1 {
                return None;
            }
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Some(v);
            }
        }
        None
    }

    /// A length-prefixed string.
    fn str(&mut self) -> Option<&'a str> {
        let n = usize::try_from(self.varint()?).ok()?;
        std::str::from_utf8(self.take(n)?).ok()
    }

    /// A presence bitmap of `n` bytes (little-endian).
    pub(super) fn bitmap(&mut self, n: usize) -> Option<u64> {
        let bytes = self.take(n)?;
        Some(
            bytes
                .iter()
                .rev()
                .fold(0u64, |acc, &b| (acc << 8) | u64::from(b)),
        )
    }
}

/// Append `v` as LEB128.
pub(super) fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Append a length-prefixed string.
fn put_str(out: &mut Vec<u8>, s: &str) {
    put_varint(out, s.len() as u64);
    out.extend_from_slice(s.as_bytes());
}

/// Append the low `n` bytes of a presence bitmap (little-endian).
pub(super) fn put_bitmap(out: &mut Vec<u8>, bits: u64, n: usize) {
    out.extend_from_slice(&bits.to_le_bytes()[..n]);
}

/// A value with a packed form.
pub(super) trait Pack: Sized {
    /// Append the packed form.
    fn pack(&self, out: &mut Vec<u8>);
    /// Read one back (`None`: not a packed value of this type).
    fn unpack(r: &mut Reader<'_>) -> Option<Self>;
    /// Step over one without building it.
    fn skip(r: &mut Reader<'_>) -> Option<()> {
        Self::unpack(r).map(drop)
    }
    /// Serialise the next packed value as its `Serialize` would (the same JSON), strings
    /// borrowed from the packed bytes instead of decoded into their own allocations.
    fn serialize_next<S: Serializer>(r: &mut Reader<'_>, s: S) -> Result<S::Ok, S::Error>
    where
        Self: Serialize,
    {
        Self::unpack(r)
            .ok_or_else(corrupt::<S::Error>)?
            .serialize(s)
    }
}

/// The error of serialising bytes that are not a packed value (which only a bug could make).
pub(super) fn corrupt<E: serde::ser::Error>() -> E {
    E::custom("corrupt packed value")
}

/// The next packed `T` of a reader as a `Serialize` value (serialised once).
pub(super) struct Next<'r, 'a, T>(RefCell<&'r mut Reader<'a>>, PhantomData<fn() -> T>);

impl<T: Pack + Serialize> Serialize for Next<'_, '_, T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        T::serialize_next(&mut self.0.borrow_mut(), s)
    }
}

/// The next field of a packed `S` as a `Serialize` value; `field` only names its type
/// (`|s: &S| &s.field`).
pub(super) fn next_field<'r, 'a, S, T>(
    _field: fn(&S) -> &Option<T>,
    r: &'r mut Reader<'a>,
) -> Next<'r, 'a, T> {
    Next(RefCell::new(r), PhantomData)
}

/// `Some(value)` read from `r` when `present`, else `None` (the field of a packed struct).
pub(super) fn unpack_if<T: Pack>(present: bool, r: &mut Reader<'_>) -> Option<Option<T>> {
    if present {
        T::unpack(r).map(Some)
    } else {
        Some(None)
    }
}

/// Step over one field of a packed `S`; `field` only names its type (`|s: &S| &s.field`).
pub(super) fn skip_field<S, T: Pack>(
    _field: fn(&S) -> &Option<T>,
    r: &mut Reader<'_>,
) -> Option<()> {
    T::skip(r)
}

/// The index of `name` in `names`, at compile time (a name that is not there fails to compile).
pub(super) const fn index_of(names: &[&str], name: &str) -> usize {
    let mut i = 0;
    while i < names.len() {
        let (a, b) = (names[i].as_bytes(), name.as_bytes());
        if a.len() == b.len() {
            let mut j = 0;
            while j < a.len() && a[j] == b[j] {
                j += 1;
            }
            if j == a.len() {
                return i;
            }
        }
        i += 1;
    }
    panic!("no such field")
}

/// The presence bitmap of a struct's fields, in declaration order (bit i = field i present).
pub(super) fn presence(present: &[bool]) -> u64 {
    present
        .iter()
        .enumerate()
        .fold(0, |bits, (i, p)| bits | (u64::from(*p) << i))
}

/// [`Pack`] for a struct of `Option` fields, generated from its field list: a presence bitmap,
/// then the present fields in order. The struct is destructured and built without `..`, so a
/// field missing from the list fails to compile. Also generates `PACKED_FIELDS` (the names in
/// order) and `skip_to` (step over the fields before one, for reading a single field).
///
/// `serialize_next` writes what the derived `Serialize` writes (`skip_serializing_if =
/// "Option::is_none"` on every field, a present one as its value: JSON's `Some`), so a field
/// that serde renames must say so here (`dish_type as "type"`); the tests compare the JSON.
macro_rules! packed_struct {
    // With `/ Input`: also [`PackIn`] for `Input<'_>`, the struct a record decodes it as, whose
    // fields (the same names, exhaustively: destructured without `..`) pack to the same bytes.
    ($name:ident / $input:ident { $($field:ident $(as $json:literal)?),* $(,)? }) => {
        $crate::snapshot::packed::packed_struct!($name { $($field $(as $json)?),* });

        impl $crate::snapshot::packed::PackIn for $input<'_> {
            fn pack_in(&self, out: &mut Vec<u8>) {
                let $input { $($field),* } = self;
                let bits = $crate::snapshot::packed::presence(&[$($field.is_some()),*]);
                $crate::snapshot::packed::put_bitmap(out, bits, $name::PACKED_BITMAP_BYTES);
                $(
                    if let Some(v) = $field {
                        $crate::snapshot::packed::PackIn::pack_in(v, out);
                    }
                )*
            }
        }
    };
    ($name:ident { $($field:ident $(as $json:literal)?),* $(,)? }) => {
        impl $name {
            /// The fields in their packed order (the declaration order).
            pub(super) const PACKED_FIELDS: &'static [&'static str] = &[$(stringify!($field)),*];
            /// Bytes of the presence bitmap.
            const PACKED_BITMAP_BYTES: usize = Self::PACKED_FIELDS.len().div_ceil(8);

            /// Read the bitmap and step over the fields before the `index`-th of
            /// [`Self::PACKED_FIELDS`]: whether that one is present (it is next in `r`).
            #[allow(dead_code)]
            pub(super) fn skip_to(
                r: &mut $crate::snapshot::packed::Reader<'_>,
                index: usize,
            ) -> Option<bool> {
                let bits = r.bitmap(Self::PACKED_BITMAP_BYTES)?;
                let mut i = 0usize;
                $(
                    if i == index {
                        return Some(bits & (1 << i) != 0);
                    }
                    if bits & (1 << i) != 0 {
                        $crate::snapshot::packed::skip_field(|s: &$name| &s.$field, r)?;
                    }
                    i += 1;
                )*
                let _ = i;
                None
            }
        }

        const _: () = assert!($name::PACKED_FIELDS.len() < 64, "the bitmap is a u64");

        impl $crate::snapshot::packed::Pack for $name {
            fn pack(&self, out: &mut Vec<u8>) {
                let $name { $($field),* } = self;
                let bits = $crate::snapshot::packed::presence(&[$($field.is_some()),*]);
                $crate::snapshot::packed::put_bitmap(out, bits, Self::PACKED_BITMAP_BYTES);
                $(
                    if let Some(v) = $field {
                        $crate::snapshot::packed::Pack::pack(v, out);
                    }
                )*
            }

            fn unpack(r: &mut $crate::snapshot::packed::Reader<'_>) -> Option<Self> {
                let bits = r.bitmap(Self::PACKED_BITMAP_BYTES)?;
                let mut bit = 1u64;
                $(
                    let $field = $crate::snapshot::packed::unpack_if(bits & bit != 0, r)?;
                    bit <<= 1;
                )*
                let _ = bit;
                Some($name { $($field),* })
            }

            fn serialize_next<S: serde::Serializer>(
                r: &mut $crate::snapshot::packed::Reader<'_>,
                s: S,
            ) -> Result<S::Ok, S::Error> {
                use serde::ser::SerializeStruct;
                let bits = r
                    .bitmap(Self::PACKED_BITMAP_BYTES)
                    .ok_or_else($crate::snapshot::packed::corrupt::<S::Error>)?;
                let mut st = s.serialize_struct(stringify!($name), bits.count_ones() as usize)?;
                let mut bit = 1u64;
                $(
                    if bits & bit != 0 {
                        st.serialize_field(
                            $crate::snapshot::packed::json_name!($field $($json)?),
                            &$crate::snapshot::packed::next_field(|s: &$name| &s.$field, r),
                        )?;
                    }
                    bit <<= 1;
                )*
                let _ = bit;
                st.end()
            }
        }
    };
}
pub(super) use packed_struct;

/// The JSON name of a packed struct's field: its serde rename, else its name.
macro_rules! json_name {
    ($field:ident) => {
        stringify!($field)
    };
    ($field:ident $json:literal) => {
        $json
    };
}
pub(super) use json_name;

packed_struct!(Dish / DishIn {
    out_dish_no,
    name,
    price,
    unit,
    count,
    discount,
    dish_type as "type",
    priority,
    properties,
});

packed_struct!(
    Properties
        / PropertiesIn {
            taste,
            cuisine,
            main_material,
            ingredients,
            others,
        }
);

impl Pack for Box<str> {
    fn pack(&self, out: &mut Vec<u8>) {
        put_str(out, self);
    }
    fn unpack(r: &mut Reader<'_>) -> Option<Self> {
        r.str().map(Into::into)
    }
    fn skip(r: &mut Reader<'_>) -> Option<()> {
        let n = usize::try_from(r.varint()?).ok()?;
        r.take(n).map(drop)
    }
    fn serialize_next<S: Serializer>(r: &mut Reader<'_>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(r.str().ok_or_else(corrupt::<S::Error>)?)
    }
}

impl Pack for Secret {
    fn pack(&self, out: &mut Vec<u8>) {
        self.0.pack(out);
    }
    fn unpack(r: &mut Reader<'_>) -> Option<Self> {
        Box::<str>::unpack(r).map(Secret)
    }
    fn skip(r: &mut Reader<'_>) -> Option<()> {
        Box::<str>::skip(r)
    }
    fn serialize_next<S: Serializer>(r: &mut Reader<'_>, s: S) -> Result<S::Ok, S::Error> {
        // `#[serde(transparent)]`: the string itself.
        Box::<str>::serialize_next(r, s)
    }
}

impl Pack for i64 {
    fn pack(&self, out: &mut Vec<u8>) {
        // Zigzag: small magnitudes of either sign stay short.
        put_varint(out, ((self << 1) ^ (self >> 63)) as u64);
    }
    fn unpack(r: &mut Reader<'_>) -> Option<Self> {
        let z = r.varint()?;
        Some(((z >> 1) as i64) ^ -((z & 1) as i64))
    }
}

impl Pack for u32 {
    fn pack(&self, out: &mut Vec<u8>) {
        put_varint(out, u64::from(*self));
    }
    fn unpack(r: &mut Reader<'_>) -> Option<Self> {
        u32::try_from(r.varint()?).ok()
    }
}

impl Pack for u8 {
    fn pack(&self, out: &mut Vec<u8>) {
        out.push(*self);
    }
    fn unpack(r: &mut Reader<'_>) -> Option<Self> {
        r.byte()
    }
}

impl Pack for Count {
    fn pack(&self, out: &mut Vec<u8>) {
        put_varint(out, self.0);
    }
    fn unpack(r: &mut Reader<'_>) -> Option<Self> {
        r.varint().map(Count)
    }
}

impl Pack for Status {
    fn pack(&self, out: &mut Vec<u8>) {
        out.push(match self {
            Status::CreateDeal => 0,
            Status::PaySuccess => 1,
        });
    }
    fn unpack(r: &mut Reader<'_>) -> Option<Self> {
        match r.byte()? {
            0 => Some(Status::CreateDeal),
            1 => Some(Status::PaySuccess),
            _ => None,
        }
    }
}

impl Pack for Unit {
    fn pack(&self, out: &mut Vec<u8>) {
        out.push(match self {
            Unit::ByShare => 0,
            Unit::ByWeight => 1,
        });
    }
    fn unpack(r: &mut Reader<'_>) -> Option<Self> {
        match r.byte()? {
            0 => Some(Unit::ByShare),
            1 => Some(Unit::ByWeight),
            _ => None,
        }
    }
}

impl Pack for DishType {
    fn pack(&self, out: &mut Vec<u8>) {
        out.push(self.index());
    }
    fn unpack(r: &mut Reader<'_>) -> Option<Self> {
        DishType::ALL.get(usize::from(r.byte()?)).copied()
    }
}

impl Pack for Box<Properties> {
    fn pack(&self, out: &mut Vec<u8>) {
        (**self).pack(out);
    }
    fn unpack(r: &mut Reader<'_>) -> Option<Self> {
        Properties::unpack(r).map(Box::new)
    }
    fn serialize_next<S: Serializer>(r: &mut Reader<'_>, s: S) -> Result<S::Ok, S::Error> {
        Properties::serialize_next(r, s)
    }
}

impl Pack for Box<[Dish]> {
    fn pack(&self, out: &mut Vec<u8>) {
        put_varint(out, self.len() as u64);
        for d in self.iter() {
            d.pack(out);
        }
    }
    fn unpack(r: &mut Reader<'_>) -> Option<Self> {
        let n = r.varint()?;
        // No capacity from the count: a dish is at least two bytes, so a bad count runs out of
        // bytes instead of reserving memory.
        (0..n).map(|_| Dish::unpack(r)).collect()
    }
    fn serialize_next<S: Serializer>(r: &mut Reader<'_>, s: S) -> Result<S::Ok, S::Error> {
        let n = usize::try_from(r.varint().ok_or_else(corrupt::<S::Error>)?)
            .map_err(|_| corrupt::<S::Error>())?;
        let mut seq = s.serialize_seq(Some(n))?;
        for _ in 0..n {
            seq.serialize_element(&Next::<Dish>(RefCell::new(&mut *r), PhantomData))?;
        }
        seq.end()
    }
}

impl Pack for Delivery {
    fn pack(&self, out: &mut Vec<u8>) {
        self.status.pack(out);
        put_varint(out, self.at_ms);
        match &self.request_id {
            None => put_varint(out, 0),
            Some(id) => {
                put_varint(out, id.len() as u64 + 1);
                out.extend_from_slice(id.as_bytes());
            }
        }
    }
    fn unpack(r: &mut Reader<'_>) -> Option<Self> {
        let status = Status::unpack(r)?;
        let at_ms = r.varint()?;
        let request_id = match r.varint()? {
            0 => None,
            n => {
                let n = usize::try_from(n - 1).ok()?;
                Some(std::str::from_utf8(r.take(n)?).ok()?.into())
            }
        };
        Some(Delivery {
            status,
            at_ms,
            request_id,
        })
    }
}

/// A value's form as a changelog record decodes it ([`SnapshotIn`]): the same JSON accepted,
/// strings borrowed from the record, packed by [`PackIn`] to the bytes [`Pack`] gives the value.
pub(super) trait Decoded {
    /// The decoded form.
    type In<'a>;
}

/// The decoded form of a `T` ([`Decoded`]).
pub(super) type In<'a, T> = <T as Decoded>::In<'a>;

/// A decoded value packed as [`Pack::pack`] packs the value it stands for (the same bytes).
pub(super) trait PackIn {
    /// Append the packed form.
    fn pack_in(&self, out: &mut Vec<u8>);
}

macro_rules! decoded_as_itself {
    ($($t:ty),*) => {$(
        impl Decoded for $t {
            type In<'a> = $t;
        }
        impl PackIn for $t {
            fn pack_in(&self, out: &mut Vec<u8>) {
                self.pack(out);
            }
        }
    )*};
}

decoded_as_itself!(i64, u32, u8, Count, Status, Unit, DishType);

impl Decoded for Box<str> {
    type In<'a> = Text<'a>;
}

impl Decoded for Secret {
    // `#[serde(transparent)]`: the string itself.
    type In<'a> = Text<'a>;
}

impl PackIn for Text<'_> {
    fn pack_in(&self, out: &mut Vec<u8>) {
        put_str(out, &self.0);
    }
}

impl Decoded for Box<[Dish]> {
    type In<'a> = DishesIn;
}

/// A `dish_list` as a record decodes it: each dish packed as soon as it is decoded (no list of
/// decoded dishes is built). Accepts what `Vec<Dish>` accepts: a sequence of dishes.
pub(super) struct DishesIn {
    count: u64,
    packed: Vec<u8>,
}

impl<'de> serde::Deserialize<'de> for DishesIn {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = DishesIn;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a sequence")
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<DishesIn, A::Error> {
                let mut dishes = DishesIn {
                    count: 0,
                    packed: Vec::with_capacity(256),
                };
                while let Some(dish) = seq.next_element::<DishIn<'_>>()? {
                    dish.pack_in(&mut dishes.packed);
                    dishes.count += 1;
                }
                Ok(dishes)
            }
        }
        d.deserialize_seq(V)
    }
}

impl PackIn for DishesIn {
    fn pack_in(&self, out: &mut Vec<u8>) {
        put_varint(out, self.count);
        out.extend_from_slice(&self.packed);
    }
}

/// Where `status` is in a packed snapshot.
const STATUS_INDEX: usize = index_of(Snapshot::PACKED_FIELDS, "status");
/// Where `sp_mchid` is in a packed snapshot.
pub(super) const SP_MCHID_INDEX: usize = index_of(Snapshot::PACKED_FIELDS, "sp_mchid");
/// Where `channel_id` is in a packed snapshot.
pub(super) const CHANNEL_ID_INDEX: usize = index_of(Snapshot::PACKED_FIELDS, "channel_id");

/// A [`Snapshot`] packed into one exact-size allocation (the module docs give the layout); the
/// default is the empty snapshot, with no allocation. Its `Debug` is the decoded snapshot's, so
/// `login_token` stays redacted.
#[derive(Clone, Default, PartialEq, Eq)]
pub(super) struct PackedSnapshot(Box<[u8]>);

impl PackedSnapshot {
    /// Pack `s`.
    pub(super) fn new(s: &Snapshot) -> Self {
        if *s == Snapshot::default() {
            return Self::default();
        }
        Self(exact(|out| s.pack(out)))
    }

    /// Pack a snapshot as a changelog record decodes it: the same bytes as packing the
    /// [`Snapshot`] the record holds (`PackedSnapshot::new`), without building it.
    pub(super) fn from_in(s: &SnapshotIn<'_>) -> Self {
        with_scratch(|out| {
            s.pack_in(out);
            // No field present (an all-zero bitmap and nothing after it): the empty snapshot.
            if out.len() == Snapshot::PACKED_FIELDS.len().div_ceil(8) && out.iter().all(|b| *b == 0)
            {
                Self::default()
            } else {
                Self(Box::from(out.as_slice()))
            }
        })
    }

    /// The snapshot back.
    pub(super) fn get(&self) -> Snapshot {
        Self::decode(&self.0).expect("a PackedSnapshot is only made by PackedSnapshot::new")
    }

    fn decode(bytes: &[u8]) -> Option<Snapshot> {
        if bytes.is_empty() {
            return Some(Snapshot::default());
        }
        let mut r = Reader::new(bytes);
        let s = Snapshot::unpack(&mut r)?;
        r.is_empty().then_some(s)
    }

    /// The field at `index` of [`Snapshot::PACKED_FIELDS`], read by `read` without decoding the
    /// rest; `None` when the field is absent.
    fn field<'a, T>(
        &'a self,
        index: usize,
        read: impl FnOnce(&mut Reader<'a>) -> Option<T>,
    ) -> Option<T> {
        if self.0.is_empty() {
            return None;
        }
        let mut r = Reader::new(&self.0);
        let present = Snapshot::skip_to(&mut r, index)
            .expect("a PackedSnapshot is only made by PackedSnapshot::new");
        present.then(|| read(&mut r)).flatten()
    }

    /// The snapshot's `status`, read without decoding the rest.
    pub(super) fn status(&self) -> Option<Status> {
        self.field(STATUS_INDEX, Status::unpack)
    }

    /// The string field at `index` of [`Snapshot::PACKED_FIELDS`] (one of the `Box<str>` ones),
    /// borrowed, read without decoding the rest.
    pub(super) fn text(&self, index: usize) -> Option<&str> {
        self.field(index, |r| {
            Some(
                r.str()
                    .expect("a PackedSnapshot is only made by PackedSnapshot::new"),
            )
        })
    }

    /// Bytes held (the allocation's size).
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.0.len()
    }
}

/// The decoded snapshot's serialisation (the same JSON), without decoding it: strings are
/// borrowed from the packed bytes (the request body and the changelog record are written so).
impl Serialize for PackedSnapshot {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.0.is_empty() {
            return Snapshot::default().serialize(s);
        }
        Snapshot::serialize_next(&mut Reader::new(&self.0), s)
    }
}

impl fmt::Debug for PackedSnapshot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.get().fmt(f)
    }
}

/// Pack a delivery history (empty: no allocation).
pub(super) fn pack_deliveries(list: &[Delivery]) -> Box<[u8]> {
    if list.is_empty() {
        return Box::default();
    }
    exact(|out| {
        for d in list {
            d.pack(out);
        }
    })
}

/// A packed delivery history back.
pub(super) fn unpack_deliveries(bytes: &[u8]) -> Vec<Delivery> {
    let mut r = Reader::new(bytes);
    let mut list = Vec::new();
    while !r.is_empty() {
        match Delivery::unpack(&mut r) {
            Some(d) => list.push(d),
            None => {
                debug_assert!(false, "packed deliveries are only made by pack_deliveries");
                break;
            }
        }
    }
    list
}

/// What `write` appends, in an allocation of exactly its length (growing a `Vec` and shrinking
/// it would keep the larger block: allocators shrink in place).
fn exact(write: impl FnOnce(&mut Vec<u8>)) -> Box<[u8]> {
    with_scratch(|out| {
        write(out);
        Box::from(out.as_slice())
    })
}

/// `f` with an empty scratch buffer, this thread's, reused from call to call (a restore packs
/// every record of a partition: one allocation fewer each). One that grew past 64 KiB (an order
/// of a thousand dishes) is not kept.
fn with_scratch<R>(f: impl FnOnce(&mut Vec<u8>) -> R) -> R {
    thread_local! {
        static SCRATCH: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
    }
    // Taken out, so that a nested call (there is none) would get a buffer of its own.
    let mut scratch = SCRATCH.with(|s| s.take());
    if scratch.capacity() == 0 {
        scratch.reserve(512);
    }
    scratch.clear();
    let r = f(&mut scratch);
    if scratch.capacity() <= 64 * 1024 {
        SCRATCH.with(|s| *s.borrow_mut() = scratch);
    }
    r
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use proptest::prelude::*;

    fn round_trip(s: &Snapshot) -> PackedSnapshot {
        let p = PackedSnapshot::new(s);
        assert_eq!(&p.get(), s);
        assert_eq!(
            serde_json::to_string(&p).unwrap(),
            serde_json::to_string(s).unwrap(),
            "serialised without decoding: the same JSON"
        );
        assert_eq!(p.status(), s.status);
        assert_eq!(p, PackedSnapshot::new(&p.get()), "canonical");
        p
    }

    fn props(v: &str) -> Properties {
        Properties {
            taste: Some(v.into()),
            cuisine: Some(format!("{v}c").into()),
            main_material: Some(format!("{v}m").into()),
            ingredients: Some(format!("{v}i").into()),
            others: Some(format!("{v}o").into()),
        }
    }

    fn full_dish(i: i64) -> Dish {
        Dish {
            out_dish_no: Some(format!("D{i}").into()),
            name: Some("宫保鸡丁".into()),
            price: Some(i),
            unit: Some(Unit::ByWeight),
            count: Some(Count(150)),
            discount: Some(u8::MAX),
            dish_type: Some(DishType::ALL[i.unsigned_abs() as usize % DishType::ALL.len()]),
            priority: Some(0),
            properties: Some(Box::new(props("辣"))),
        }
    }

    fn full(dishes: usize) -> Snapshot {
        Snapshot {
            sp_mchid: Some("1900000001".into()),
            sp_appid: Some("wx8888888888888888".into()),
            channel_id: Some("".into()),
            sub_mchid: Some("1900000109".into()),
            sub_appid: Some("wx".into()),
            openid: Some("oUpF8uMuAJO_M2pxb1Q9zNjWeS6o".into()),
            sub_openid: Some("🦀".into()),
            out_shop_no: Some("S1".into()),
            login_token: Some(Secret("tok-secret-42".into())),
            order_entry: Some("pages/menu".into()),
            total_amount: Some(i64::MAX),
            discount_amount: Some(i64::MIN),
            user_amount: Some(-1),
            status: Some(Status::PaySuccess),
            action_time: Some("2026-11-27T12:30:00+08:00".into()),
            pay_time: Some("2026-11-27T12:40:01+08:00".into()),
            transaction_id: Some("4200000001".into()),
            out_trade_no: Some("P1".into()),
            out_order_no: Some("O-1".into()),
            out_table_no: Some("A1".into()),
            people_count: Some(u32::MAX),
            dish_list: Some((0..dishes as i64).map(full_dish).collect()),
        }
    }

    #[test]
    fn every_field_present_round_trips() {
        for dishes in [0, 1, 1000] {
            round_trip(&full(dishes));
        }
    }

    #[test]
    fn no_field_is_empty_and_round_trips() {
        let p = round_trip(&Snapshot::default());
        assert_eq!(p.len(), 0, "no allocation for an empty snapshot");
        assert_eq!(p, PackedSnapshot::default());
    }

    #[test]
    fn each_field_alone_round_trips() {
        // Every field of the list on its own (and every field but it), so each bit and each
        // skip is exercised, the status accessor included.
        let all = full(2);
        let json = serde_json::to_value(&all).unwrap();
        assert_eq!(
            Snapshot::PACKED_FIELDS,
            crate::rules::BODY_FIELDS,
            "packed in the body's field order"
        );
        assert_eq!(
            json.as_object().unwrap().len(),
            Snapshot::PACKED_FIELDS.len()
        );
        for key in Snapshot::PACKED_FIELDS {
            let mut one = serde_json::Map::new();
            one.insert(key.to_string(), json[key].clone());
            let s: Snapshot = serde_json::from_value(one.into()).unwrap();
            assert_ne!(s, Snapshot::default(), "{key}");
            round_trip(&s);
            let mut but = json.clone();
            but.as_object_mut().unwrap().remove(*key);
            round_trip(&serde_json::from_value(but).unwrap());
        }
    }

    #[test]
    fn strings_integers_and_dishes_at_their_edges_round_trip() {
        for text in [
            "",
            "a",
            "面",
            "🦀 and ü",
            &"x".repeat(200),
            &"長".repeat(5000),
        ] {
            let s = Snapshot {
                out_table_no: Some(text.into()),
                login_token: Some(Secret(text.into())),
                status: Some(Status::CreateDeal),
                ..Snapshot::default()
            };
            round_trip(&s);
        }
        for v in [
            0,
            1,
            -1,
            63,
            -64,
            64,
            127,
            128,
            i64::MAX,
            i64::MIN,
            i64::MIN + 1,
        ] {
            let s = Snapshot {
                total_amount: Some(v),
                people_count: Some(v as u32),
                ..Snapshot::default()
            };
            round_trip(&s);
        }
        let empty_dishes = [
            Dish {
                out_dish_no: None,
                name: None,
                price: None,
                unit: None,
                count: None,
                discount: None,
                dish_type: None,
                priority: None,
                properties: None,
            },
            Dish {
                properties: Some(Box::new(Properties {
                    taste: None,
                    cuisine: None,
                    main_material: None,
                    ingredients: None,
                    others: None,
                })),
                count: Some(Count(u64::MAX)),
                ..full_dish(i64::MIN)
            },
        ];
        round_trip(&Snapshot {
            dish_list: Some(empty_dishes.into()),
            ..Snapshot::default()
        });
        round_trip(&Snapshot {
            dish_list: Some(Box::default()),
            ..Snapshot::default()
        });
    }

    #[test]
    fn every_enum_value_round_trips() {
        for (i, t) in DishType::ALL.iter().enumerate() {
            assert_eq!(usize::from(t.index()), i);
            let d = Dish {
                dish_type: Some(*t),
                unit: Some(if i % 2 == 0 {
                    Unit::ByShare
                } else {
                    Unit::ByWeight
                }),
                ..full_dish(1)
            };
            round_trip(&Snapshot {
                dish_list: Some(vec![d].into()),
                ..Snapshot::default()
            });
        }
        for status in [None, Some(Status::CreateDeal), Some(Status::PaySuccess)] {
            round_trip(&Snapshot { status, ..full(1) });
        }
    }

    #[test]
    fn varints_round_trip_at_every_width_and_reject_overlong() {
        let mut values = vec![0, 1, 127, 128, 255, 16_383, 16_384, u64::MAX, u64::MAX - 1];
        values.extend((0..64).map(|b| 1u64 << b));
        values.extend((1..64).map(|b| (1u64 << b) - 1));
        for v in values {
            let mut out = Vec::new();
            put_varint(&mut out, v);
            let mut r = Reader::new(&out);
            assert_eq!(r.varint(), Some(v));
            assert!(r.is_empty());
        }
        assert_eq!(Reader::new(&[0xff; 10]).varint(), None, "more than 64 bits");
        assert_eq!(Reader::new(&[0x80]).varint(), None, "cut short");
    }

    #[test]
    fn truncated_or_trailing_bytes_do_not_decode() {
        let p = PackedSnapshot::new(&full(3));
        for n in 0..p.0.len() {
            // The empty prefix is the empty snapshot; every other one is cut short.
            if n > 0 {
                assert_eq!(PackedSnapshot::decode(&p.0[..n]), None, "{n}");
            }
        }
        let mut longer = p.0.to_vec();
        longer.push(0);
        assert_eq!(PackedSnapshot::decode(&longer), None);
    }

    #[test]
    fn debug_of_the_packed_form_is_the_snapshot_s_and_redacts_the_token() {
        let s = full(1);
        let p = PackedSnapshot::new(&s);
        let shown = format!("{p:?}");
        assert_eq!(shown, format!("{s:?}"));
        assert!(!shown.contains("tok-secret-42"), "{shown}");
        assert!(shown.contains("redacted"));
    }

    #[test]
    fn deliveries_round_trip() {
        assert!(pack_deliveries(&[]).is_empty());
        let list = vec![
            Delivery {
                status: Status::CreateDeal,
                at_ms: 0,
                request_id: None,
            },
            Delivery {
                status: Status::PaySuccess,
                at_ms: u64::MAX,
                request_id: Some("".into()),
            },
            Delivery {
                status: Status::PaySuccess,
                at_ms: 1_764_218_096_000,
                request_id: Some("08F0A3B8A10610D0021858C8E1C30E20D3CF2828DA8D01-0 é".into()),
            },
        ];
        assert_eq!(unpack_deliveries(&pack_deliveries(&list)), list);
    }

    fn arb_text() -> impl Strategy<Value = Option<Box<str>>> {
        proptest::option::of(".{0,12}".prop_map(Into::into))
    }

    fn arb_dish() -> impl Strategy<Value = Dish> {
        let props = proptest::option::of(
            (arb_text(), arb_text(), arb_text(), arb_text(), arb_text()).prop_map(
                |(taste, cuisine, main_material, ingredients, others)| {
                    Box::new(Properties {
                        taste,
                        cuisine,
                        main_material,
                        ingredients,
                        others,
                    })
                },
            ),
        );
        (
            (arb_text(), arb_text(), any::<Option<i64>>()),
            (
                proptest::option::of(prop_oneof![Just(Unit::ByShare), Just(Unit::ByWeight)]),
                any::<Option<u64>>(),
                any::<Option<u8>>(),
            ),
            (
                proptest::option::of(proptest::sample::select(DishType::ALL.to_vec())),
                any::<Option<u8>>(),
                props,
            ),
        )
            .prop_map(
                |(
                    (out_dish_no, name, price),
                    (unit, count, discount),
                    (dish_type, priority, properties),
                )| Dish {
                    out_dish_no,
                    name,
                    price,
                    unit,
                    count: count.map(Count),
                    discount,
                    dish_type,
                    priority,
                    properties,
                },
            )
    }

    pub(crate) fn arb_snapshot() -> impl Strategy<Value = Snapshot> {
        let status = proptest::option::of(prop_oneof![
            Just(Status::CreateDeal),
            Just(Status::PaySuccess)
        ]);
        (
            (arb_text(), arb_text(), arb_text(), arb_text(), arb_text()),
            (arb_text(), arb_text(), arb_text(), arb_text(), arb_text()),
            (
                any::<Option<i64>>(),
                any::<Option<i64>>(),
                any::<Option<i64>>(),
                status,
            ),
            (arb_text(), arb_text(), arb_text(), arb_text(), arb_text()),
            (
                arb_text(),
                any::<Option<u32>>(),
                proptest::option::of(proptest::collection::vec(arb_dish(), 0..6)),
            ),
        )
            .prop_map(
                |(
                    (sp_mchid, sp_appid, channel_id, sub_mchid, sub_appid),
                    (openid, sub_openid, out_shop_no, login_token, order_entry),
                    (total_amount, discount_amount, user_amount, status),
                    (action_time, pay_time, transaction_id, out_trade_no, out_order_no),
                    (out_table_no, people_count, dish_list),
                )| Snapshot {
                    sp_mchid,
                    sp_appid,
                    channel_id,
                    sub_mchid,
                    sub_appid,
                    openid,
                    sub_openid,
                    out_shop_no,
                    login_token: login_token.map(Secret),
                    order_entry,
                    total_amount,
                    discount_amount,
                    user_amount,
                    status,
                    action_time,
                    pay_time,
                    transaction_id,
                    out_trade_no,
                    out_order_no,
                    out_table_no,
                    people_count,
                    dish_list: dish_list.map(Into::into),
                },
            )
    }

    proptest! {
        #[test]
        fn any_snapshot_round_trips_canonically(a in arb_snapshot(), b in arb_snapshot()) {
            let (pa, pb) = (PackedSnapshot::new(&a), PackedSnapshot::new(&b));
            prop_assert_eq!(&pa.get(), &a);
            prop_assert_eq!(pa.status(), a.status);
            prop_assert_eq!(pa.text(SP_MCHID_INDEX), a.sp_mchid.as_deref());
            prop_assert_eq!(pa.text(CHANNEL_ID_INDEX), a.channel_id.as_deref());
            let out_order_no = index_of(Snapshot::PACKED_FIELDS, "out_order_no");
            prop_assert_eq!(pa.text(out_order_no), a.out_order_no.as_deref());
            prop_assert_eq!(pa == pb, a == b, "equal packed bytes exactly when equal snapshots");
            prop_assert_eq!(
                serde_json::to_vec(&pa.get()).unwrap(),
                serde_json::to_vec(&a).unwrap(),
                "the same JSON"
            );
            prop_assert_eq!(
                serde_json::to_vec(&pa).unwrap(),
                serde_json::to_vec(&a).unwrap(),
                "the same JSON, serialised without decoding"
            );
        }

        #[test]
        fn any_delivery_history_round_trips(
            list in proptest::collection::vec(
                (any::<bool>(), any::<u64>(), arb_text()).prop_map(|(paid, at_ms, request_id)| Delivery {
                    status: if paid { Status::PaySuccess } else { Status::CreateDeal },
                    at_ms,
                    request_id,
                }),
                0..6,
            )
        ) {
            prop_assert_eq!(unpack_deliveries(&pack_deliveries(&list)), list);
        }
    }
}
