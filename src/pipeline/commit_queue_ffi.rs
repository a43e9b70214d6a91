//! One asynchronous offset commit whose answer reaches the consumer's commit callback.
//!
//! rust-rdkafka 0.39's `commit(…, CommitMode::Async)` calls `rd_kafka_commit(rk, offsets, 1)`,
//! which gives librdkafka no reply queue: it then posts the result only to a native
//! `offset_commit_cb`, which rust-rdkafka never sets, so the answer is dropped
//! (fede1024/rust-rdkafka#856). `rd_kafka_commit_queue` with the consumer queue as the reply
//! queue posts it there as an `RD_KAFKA_EVENT_OFFSET_COMMIT` event instead, and
//! `BaseConsumer::poll` hands that event to `ConsumerContext::commit_callback`. This is the one
//! module of the crate with `unsafe` code: two librdkafka calls.
#![allow(unsafe_code)]

use rdkafka::bindings as rdsys;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::{KafkaError, KafkaResult};
use rdkafka::types::{RDKafkaErrorCode, RDKafkaRespErr};
use rdkafka::TopicPartitionList;

/// Send `offsets` as an asynchronous commit; its answer comes through `commit_callback` in a
/// later `poll` of `consumer`.
pub fn commit_async<C: ConsumerContext>(
    consumer: &BaseConsumer<C>,
    offsets: &TopicPartitionList,
) -> KafkaResult<()> {
    let rk = consumer.client().native_ptr();
    // SAFETY: `rk` is the live handle `consumer` owns for the whole call. The queue handle from
    // `rd_kafka_queue_get_consumer` is a new reference (NULL when there is no group) released
    // right after the call; librdkafka keeps its own reference to the reply queue and copies
    // `offsets` before `rd_kafka_commit_queue` returns.
    let err = unsafe {
        let queue = rdsys::rd_kafka_queue_get_consumer(rk);
        if queue.is_null() {
            return Err(KafkaError::ConsumerCommit(RDKafkaErrorCode::UnknownGroup));
        }
        let err =
            rdsys::rd_kafka_commit_queue(rk, offsets.ptr(), queue, None, std::ptr::null_mut());
        rdsys::rd_kafka_queue_destroy(queue);
        err
    };
    if err == RDKafkaRespErr::RD_KAFKA_RESP_ERR_NO_ERROR {
        Ok(())
    } else {
        Err(KafkaError::ConsumerCommit(err.into()))
    }
}
