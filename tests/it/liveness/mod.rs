//! Liveness under faults (issue 11): every test here attacks one way the service could stop
//! making progress while looking healthy, or flood the dead-letter topic, and asserts progress
//! resumes (or the documented exit) with no spurious dead letters.
mod breaker;
mod config;
mod coordinator;
mod figures;
mod oversized;
mod panic;
mod produce_fault;
mod retention;
