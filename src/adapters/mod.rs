//! Adapters: the ports implemented over real transports.

pub mod jwt;
pub mod spycloud;
