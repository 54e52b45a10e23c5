//! The test harness of the integration tests (`crates/*/tests/it`): one copy of what the
//! server's tests and the load tools' tests both need. A dev-dependency only.
//!
//! - [`server`]: [`Server`], a real mytracks server on OS-chosen ports with its own temporary
//!   configuration and data directory, stopped on drop. *How* it runs is its [`Backend`]:
//! - [`process`]: the [`Process`] backend, a child process of a binary that writes
//!   `runtime.json` (the server's own tests; restart, SIGTERM, SIGKILL, command-line tools).
//!   The load tools' tests run the server in their process instead (their backend is theirs:
//!   the server's binary belongs to another package and cannot be named there).
//! - [`command`]: running a command with a timeout and capturing its [`Output`].
//! - [`api`]: [`Api`], a blocking REST client with a cookie jar and CSRF token, and the
//!   account fixtures built on it.
//! - [`database`]: SQLite or a fresh PostgreSQL schema per test server.
//! - [`mosquitto`]: Mosquitto's `mosquitto_pub`/`mosquitto_sub` as clients, and its broker.
//! - [`rmqtt`]: a [`Cluster`] of rmqtt brokers (the scale-out tests' clustered engine).
//! - [`owntracks_frontend`]: where the built OwnTracks Frontend is (not in the repository).

pub mod api;
pub mod command;
pub mod database;
pub mod mosquitto;
pub mod owntracks_frontend;
pub mod process;
pub mod rmqtt;
pub mod server;

pub use api::{add_user, login, user_password, Api};
pub use command::{run, run_without_server_env, signal, tail, Output};
pub use database::{database_config, postgres_url, Database, DEFAULT_TEST_POSTGRES};
pub use mosquitto::{
    mosquitto_pub, mosquitto_sub, parse_messages, publish, Mosquitto, Msg, Subscriber, FORMAT,
};
pub use process::{Process, Program, Stop};
pub use rmqtt::Cluster;
pub use server::{Backend, Listening, Server, ANONYMOUS};
