//! `sqlx::migrate!` embeds `migrations/` at compile time; a new migration file alone would not
//! make cargo rebuild this crate without this line (as sqlx's documentation advises).
fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
