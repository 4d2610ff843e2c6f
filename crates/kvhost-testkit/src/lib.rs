//! Test fixtures for kvhost's Redis tests: real servers, real clusters, real faults.
//!
//! * [`RedisServer`]: a `redis-server` process on a loopback ephemeral port, in its own temp
//!   dir, killed when dropped; it can be stopped and restarted on the same port and data.
//! * [`RedisCluster`]: N masters (and optional replicas) joined with
//!   `redis-cli --cluster create`.
//! * [`Proxy`]: a loopback TCP proxy that can pass, delay, black-hole, or cut connections
//!   when a reply comes back (the "command applied, reply lost" fault).
//!
//! Servers are killed when dropped; shared ones ([`shared_server`], [`shared_cluster`]) and any
//! still running when the process exits are killed by an exit hook.
//!
//! A missing `redis-server` is a test failure with the command that installs it, never a skip.

mod proxy;
mod reaper;
mod server;

pub use proxy::{Proxy, ProxyMode};
pub use server::{shared_cluster, shared_server, RedisCluster, RedisServer};
