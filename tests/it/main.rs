//! Integration tests: one binary, a shared harness (keys generated at test time, a sandbox per
//! test on a free port), real HTTP throughout.

mod harness;
#[path = "../chaos/history.rs"]
mod history;

mod bench;
mod broker;
mod cli;
mod connections;
mod demo;
mod deploy;
mod events;
mod fencing;
mod keys;
mod liveness;
mod merchants;
mod merge;
mod migration;
mod operations;
mod pipeline;
mod platform;
mod rebalance;
mod request_id;
mod rotation;
mod sandbox_faults;
mod sandbox_rules;
mod schemas;
mod sdk;
mod signing;
mod stack;
mod support;
mod wechatpay_check;
