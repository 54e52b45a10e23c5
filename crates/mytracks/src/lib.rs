//! The mytracks server binary's library: the composition root that wires the services
//! (`mytracks-app`), the embedded broker and the HTTP interface (`mytracks-http`) together.
//!
//! # Layout
//!
//! - [`commands`]: the command line ([`Cli`]) and [`execute`]; one module per command family
//!   (`serve`, the operator commands `user`/`token`/`device`, `pki`, `export`/`import`);
//! - [`server`]: a running [`Server`]: [`Server::start`] binds, opens the services, starts the
//!   broker and the listeners; [`Server::run_until`] serves and shuts down gracefully;
//! - [`transport`]: how MQTT clients reach the broker (TCP, TLS, WebSocket);
//! - [`config`]: the TOML file and `MYTRACKS_*` variables, resolved into [`Settings`];
//! - [`runtime_file`]: `DATA_DIR/runtime.json`, the ports actually listened on;
//! - [`data_dir`]: the data directory, private to the server's user;
//! - [`fd_budget`]: the open files limit, and the connection limits fitted into it.
//!
//! A library behind a thin `main.rs` so that other crates' tests (the load tools') can start a
//! whole server in-process ([`Server::start`] or [`run`]) with their own settings and their
//! own shutdown trigger instead of signals; this crate's own integration tests drive the
//! binary.

pub mod commands;
pub mod config;
pub mod data_dir;
pub mod fd_budget;
#[doc(hidden)]
pub mod fuzz;
pub mod runtime_file;
pub mod server;
pub mod transport;

pub use commands::database::{open_database, DATABASE_FILE};
pub use commands::{execute, Cli, ServeArgs};
pub use config::Settings;
pub use mytracks_app::VERSION;
pub use server::{run, Reloader, Server, SHUTDOWN_TIMEOUT, STORE_FILE};
