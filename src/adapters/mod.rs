//! Adapters: the ports implemented over real transports.

pub mod cache;
pub mod jwt;
pub mod spycloud;
