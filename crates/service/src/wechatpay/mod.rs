//! The merchant's side of WeChat Pay APIv3, for the sync-status endpoint.
//!
//! Small pieces, each testable alone (after wechatpay-go's `core/auth`):
//! [`keys`] loads the merchant private key once and the WeChat Pay verification keys;
//! [`sign`] signs the canonical message into the `Authorization` header (the message and the
//! header's format are the core's `apiv3`, re-exported);
//! [`verify`] checks a response's signature; [`mod@classify`] maps every outcome of a POST to one
//! [`Disposition`]; [`client`] does the HTTP; [`rules`] (the core's, re-exported) holds the body
//! rules shared with the sandbox and the snapshot validation.

pub mod check;
pub mod classify;
pub mod client;
pub mod keys;
pub mod keystore;
pub mod platform;
pub use catering_sync_core::rules;
pub mod sign;
pub mod verify;

pub use classify::{
    classify, ApiError, Disposition, Exchange, Rejection, Transient, TransientCause,
};
pub use client::{Attempt, ClientConfig, WechatPayClient};
pub use keys::{KeyError, MerchantKey, SerialError, VerificationKeys};
pub use sign::{Authorization, Credentials};
pub use verify::VerifyError;

pub use catering_sync_core::apiv3::SYNC_STATUS_PATH;
/// Production base URL.
pub const PRODUCTION_BASE_URL: &str = "https://api.mch.weixin.qq.com";
/// Backup access point in another city.
pub const BACKUP_BASE_URL: &str = "https://api2.mch.weixin.qq.com";
