//! Adapters: the ports implemented over real transports.

pub mod http;
pub mod jwt;
pub mod spycloud;
