//! Helpers shared by the integration tests.
#![allow(dead_code)]

pub mod app;
pub mod ctim;
pub mod jwt;
pub mod redis;
pub mod snapshots;
pub mod stix;
pub mod strategies;
