//! The protocols above TCP: one stream handler per protocol, chosen per connection.

pub mod sse;
pub mod ws;
