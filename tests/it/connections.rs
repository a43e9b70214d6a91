//! Keep-alive connections against WeChat Pay's idle timeout (`Keep-Alive: timeout=8`): the
//! client must retire an idle connection before the server closes it, or a post can be written
//! into a socket the server is closing and fail its first attempt.

use std::time::Duration;

use bytes::Bytes;
use catering_sync::sandbox::Faults;
use catering_sync::wechatpay::Disposition;

use crate::harness::{client, sp_body};
use crate::stack::sandbox_with;

/// The sandbox closes connections idle for 8 s, as WeChat Pay does. After 6 s of idleness — past
/// the client's idle timeout, short of the server's — the next post goes on a new connection:
/// the client never holds a connection into the window where the server may close it. (Before:
/// the pool kept idle connections 50 s and reused this one, into the 8 s close.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_connection_is_retired_before_wechatpay_closes_it() {
    let sandbox = sandbox_with(Faults::default()).await;
    let c = client(&sandbox);
    let post = |no: &str| Bytes::from(sp_body(no, "CREATE_DEAL").to_string());
    assert_eq!(
        c.sync_status(post("KA000001")).await.disposition,
        Disposition::Delivered
    );
    assert_eq!(
        c.sync_status(post("KA000002")).await.disposition,
        Disposition::Delivered
    );
    assert_eq!(
        sandbox.stats().connections,
        1,
        "back-to-back posts share a connection"
    );
    // The scenario is idleness itself (no condition to wait for): 6 s without a request.
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert_eq!(
        c.sync_status(post("KA000003")).await.disposition,
        Disposition::Delivered
    );
    assert_eq!(
        sandbox.stats().connections,
        2,
        "the idle connection was retired before the server's 8 s"
    );
    sandbox.shutdown().await;
}
