//! Asynchronous offset commits whose answers come back on a queue of the poll loop's own.
//!
//! rust-rdkafka 0.39's `commit(…, CommitMode::Async)` calls `rd_kafka_commit(rk, offsets, 1)`,
//! which gives librdkafka no reply queue: it then posts the result only to a native
//! `offset_commit_cb`, which rust-rdkafka never sets, so the answer is dropped
//! (fede1024/rust-rdkafka#856). Here every periodic commit is sent with `rd_kafka_commit_queue`
//! and a dedicated reply queue ([`CommitReplies`]), which the poll loop reads without waiting on
//! every iteration, and which a revocation reads with a bound to let the commit in flight finish
//! before the drain commit is sent (so a late retry of the older commit cannot land after the
//! drain commit and move the committed offset back). This is the one module of the crate with
//! `unsafe` code.
#![allow(unsafe_code)]

use std::ffi::CStr;
use std::time::Duration;

use rdkafka::bindings as rdsys;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::{KafkaError, KafkaResult};
use rdkafka::types::{RDKafkaErrorCode, RDKafkaRespErr};
use rdkafka::TopicPartitionList;

/// The answer to one commit: its outcome and the (topic, partition, offset) it carried.
pub type Reply = (KafkaResult<()>, Vec<(String, i32, i64)>);

/// The reply queue of the periodic commits. Must be dropped before the consumer it was made for
/// (librdkafka requires every queue handle to be destroyed before the client).
pub struct CommitReplies {
    queue: *mut rdsys::rd_kafka_queue_t,
}

// SAFETY: a librdkafka queue handle may be used from any thread (librdkafka locks the queue);
// this one is only used under the poll context's mutex.
unsafe impl Send for CommitReplies {}

impl CommitReplies {
    /// A new, empty reply queue on `consumer`'s client.
    pub fn new<C: ConsumerContext>(consumer: &BaseConsumer<C>) -> Self {
        let rk = consumer.client().native_ptr();
        // SAFETY: `rk` is the live handle `consumer` owns; the new queue is ours until `Drop`.
        let queue = unsafe { rdsys::rd_kafka_queue_new(rk) };
        Self { queue }
    }

    /// Send `offsets` as an asynchronous commit; its answer comes from [`Self::next`].
    pub fn send<C: ConsumerContext>(
        &self,
        consumer: &BaseConsumer<C>,
        offsets: &TopicPartitionList,
    ) -> KafkaResult<()> {
        let rk = consumer.client().native_ptr();
        // SAFETY: `rk` is live for the call, `self.queue` until `Drop`; librdkafka copies
        // `offsets` before returning and keeps its own reference to the reply queue.
        let err = unsafe {
            rdsys::rd_kafka_commit_queue(rk, offsets.ptr(), self.queue, None, std::ptr::null_mut())
        };
        if err == RDKafkaRespErr::RD_KAFKA_RESP_ERR_NO_ERROR {
            Ok(())
        } else {
            Err(KafkaError::ConsumerCommit(err.into()))
        }
    }

    /// The next commit answer, waiting up to `timeout` (zero: only what is there).
    pub fn next(&self, timeout: Duration) -> Option<Reply> {
        let ms = i32::try_from(timeout.as_millis()).unwrap_or(i32::MAX);
        // SAFETY: `self.queue` is live; the event is destroyed after its fields are copied out,
        // and its partition list (owned by the event) is only read before that.
        unsafe {
            let ev = rdsys::rd_kafka_queue_poll(self.queue, ms);
            if ev.is_null() {
                return None;
            }
            let reply = if rdsys::rd_kafka_event_type(ev) == rdsys::RD_KAFKA_EVENT_OFFSET_COMMIT {
                let err = rdsys::rd_kafka_event_error(ev);
                let result = if err == RDKafkaRespErr::RD_KAFKA_RESP_ERR_NO_ERROR {
                    Ok(())
                } else {
                    Err(KafkaError::ConsumerCommit(RDKafkaErrorCode::from(err)))
                };
                let list = rdsys::rd_kafka_event_topic_partition_list(ev);
                let mut offsets = Vec::new();
                if !list.is_null() {
                    let list = &*list;
                    for i in 0..usize::try_from(list.cnt).unwrap_or(0) {
                        let e = &*list.elems.add(i);
                        let topic = if e.topic.is_null() {
                            String::new()
                        } else {
                            CStr::from_ptr(e.topic).to_string_lossy().into_owned()
                        };
                        offsets.push((topic, e.partition, e.offset));
                    }
                }
                Some((result, offsets))
            } else {
                None
            };
            rdsys::rd_kafka_event_destroy(ev);
            reply
        }
    }
}

impl Drop for CommitReplies {
    fn drop(&mut self) {
        // SAFETY: the handle is ours and destroyed once.
        unsafe { rdsys::rd_kafka_queue_destroy(self.queue) }
    }
}
