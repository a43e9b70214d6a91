//! The order snapshot: typed form ([`types`]), applying events to an order's state ([`order`]:
//! RFC 7396 merge, defaults, `action_time`, status only forward, validation with the body rules),
//! the request body and its digest ([`body`]), the body rules told on the typed form (`valid`), the changelog record ([`record`]), and the packed
//! in-memory form an order's state keeps its snapshot and delivery history in (`packed`).

pub mod body;
pub mod order;
mod packed;
pub mod record;
pub mod types;
mod valid;

pub use body::{may_coalesce, Body};
pub use order::{Defaults, Deliveries, Delivery, Ignored, OrderState, Outcome, Rejected};
pub use record::StateRecord;
pub use types::{Count, Dish, OrderEvent, Patch, Snapshot, Status};
