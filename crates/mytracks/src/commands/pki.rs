//! `mytracks pki ...`: the built-in certificate authority from the command line. Like the
//! account commands it opens the database directly; a running server notices the change
//! within [`mytracks_app::ACCOUNT_POLL`] (new CRL, new server certificate or CA on its TLS
//! listeners, without a restart).

use super::DatabaseArgs;
use anyhow::Context;
use clap::Subcommand;
use mytracks_app::pki::PkiService;
use mytracks_app::time::timestamp;
use std::path::PathBuf;

#[derive(Debug, Subcommand)]
pub enum PkiCommand {
    /// Create the certificate authority that signs server and client certificates.
    InitCa {
        /// Its common name.
        #[arg(long, value_name = "NAME", default_value = "mytracks CA")]
        cn: String,
        /// ecdsa-p256, rsa-2048, rsa-3072 or rsa-4096.
        #[arg(long, value_name = "ALG", default_value = "ecdsa-p256")]
        algorithm: String,
        #[arg(long, value_name = "N", default_value_t = 3650,
              value_parser = clap::value_parser!(u32).range(1..=36_500))]
        days: u32,
        /// Replace an active CA (it is kept as history; certificates it issued stop working).
        #[arg(long)]
        replace: bool,
    },
    /// Issue the server certificate the TLS listeners present.
    ServerCert {
        /// Host name or address to include (repeatable) [default: this machine's host name
        /// and addresses, localhost, `[pki] server_names`].
        #[arg(long = "name", value_name = "NAME")]
        names: Vec<String>,
        #[arg(long, value_name = "N", default_value_t = 825,
              value_parser = clap::value_parser!(u32).range(1..=36_500))]
        days: u32,
    },
    /// Issue a client certificate for a user (CN = username) and write it as PKCS#12.
    ClientCert {
        user: String,
        /// Where to write the PKCS#12 bundle (`.p12`; `.otrp` for OwnTracks on iOS).
        #[arg(long, value_name = "FILE")]
        p12: PathBuf,
        /// Its passphrase [default: a generated one, printed].
        #[arg(long, value_name = "P")]
        passphrase: Option<String>,
        #[arg(long, value_name = "N", default_value_t = 5,
              value_parser = clap::value_parser!(u32).range(1..=5))]
        years: u32,
        #[arg(long, value_name = "O")]
        organization: Option<String>,
        #[arg(long, value_name = "OU")]
        unit: Option<String>,
    },
    /// Revoke a certificate by its serial number (as `pki status` or `openssl x509 -serial`
    /// prints it); the CRL is reissued.
    Revoke { serial: String },
    /// Show the CA, the server certificate, the client certificates and the CRL.
    Status,
}

/// Opens the database and the server key of the configuration `db` points at.
async fn open(db: &DatabaseArgs) -> anyhow::Result<PkiService> {
    // The server key lives in the data directory whatever the database.
    let (store, settings) = db.open(true).await?;
    let sealer =
        mytracks_app::sealer::Sealer::load(&settings.data_dir, settings.server_key.as_ref())
            .context("the server key")?;
    mytracks_app::sealer::upgrade_legacy(&store, &sealer).await?;
    Ok(PkiService::new(store, sealer, settings.pki_server_names).await?)
}

pub async fn run(command: PkiCommand, db: DatabaseArgs) -> anyhow::Result<()> {
    let pki = open(&db).await?;
    let result = execute(command, &pki).await;
    pki.store().close().await;
    result
}

fn date(at: i64) -> String {
    timestamp(at).chars().take(10).collect()
}

async fn execute(command: PkiCommand, pki: &PkiService) -> anyhow::Result<()> {
    match command {
        PkiCommand::InitCa {
            cn,
            algorithm,
            days,
            replace,
        } => {
            if let Some(active) = pki.active_ca().await? {
                anyhow::ensure!(
                    replace,
                    "there is already an active CA ({:?}, fingerprint {}); --replace makes a new one and retires it",
                    active.common_name,
                    active.fingerprint
                );
            }
            let ca = pki.create_ca(&cn, &algorithm, days).await?;
            println!("created CA {:?} ({})", ca.common_name, ca.algorithm);
            println!("fingerprint: {}", ca.fingerprint);
            println!("valid until: {}", date(ca.not_after));
        }
        PkiCommand::ServerCert { names, days } => {
            let names = if names.is_empty() {
                pki.default_server_names()
            } else {
                names
            };
            let cert = pki.issue_server(&names, days).await?;
            println!("issued server certificate {}", cert.serial);
            println!("names: {}", names.join(", "));
            println!("valid until: {}", date(cert.not_after));
        }
        PkiCommand::ClientCert {
            user,
            p12,
            passphrase,
            years,
            organization,
            unit,
        } => {
            let account = pki
                .store()
                .user_by_name(&user)
                .await?
                .with_context(|| format!("no user named {user:?}"))?;
            anyhow::ensure!(account.is_active, "user {user:?} is deactivated");
            let generated = passphrase.is_none();
            let passphrase = passphrase.unwrap_or_else(|| mytracks_app::secret::alphanumeric(16));
            let cert = pki
                .issue_client(&account, organization.as_deref(), unit.as_deref(), years)
                .await?;
            let bundle = pki.pkcs12(&cert, &passphrase).await?;
            mytracks_private_file::write_private(&p12, &bundle)
                .with_context(|| format!("cannot write {}", p12.display()))?;
            println!("issued client certificate {} for {user}", cert.serial);
            println!("valid until: {}", date(cert.not_after));
            println!("written to {}", p12.display());
            if generated {
                println!("passphrase: {passphrase}");
            }
        }
        PkiCommand::Revoke { serial } => {
            let cert = pki.certificate_by_serial(&serial).await?;
            anyhow::ensure!(
                cert.revoked_at.is_none(),
                "certificate {} is already revoked",
                cert.serial
            );
            let cert = pki.revoke(cert.id).await?;
            println!(
                "revoked {} certificate {} ({})",
                cert.kind, cert.serial, cert.common_name
            );
        }
        PkiCommand::Status => status(pki).await?,
    }
    Ok(())
}

async fn status(pki: &PkiService) -> anyhow::Result<()> {
    let Some(ca) = pki.active_ca().await? else {
        println!("no active certificate authority (create one with `mytracks pki init-ca`)");
        return Ok(());
    };
    let now = mytracks_store::now();
    println!("CA:          {} ({})", ca.common_name, ca.algorithm);
    println!("fingerprint: {}", ca.fingerprint);
    println!(
        "valid:       {} to {}",
        date(ca.not_before),
        date(ca.not_after)
    );
    println!("CRL number:  {}", ca.crl_number);
    let servers = pki.certificates("server", None).await?;
    let presented = servers
        .iter()
        .find(|c| c.active && c.ca_id == ca.id && c.revoked_at.is_none() && c.not_after > now);
    match presented {
        Some(c) => println!(
            "server:      {} (serial {}, valid until {})",
            c.names.replace(',', ", "),
            c.serial,
            date(c.not_after)
        ),
        None => println!("server:      none (issue one with `mytracks pki server-cert`)"),
    }
    let clients = pki.certificates("client", None).await?;
    println!();
    println!("{:<32}  {:<20} {:<10}  STATUS", "SERIAL", "USER", "EXPIRES");
    for c in clients.iter().filter(|c| c.ca_id == ca.id) {
        let state = match (c.revoked_at, c.not_after > now) {
            (Some(at), _) => format!("revoked {}", date(at)),
            (None, false) => "expired".to_owned(),
            (None, true) => "valid".to_owned(),
        };
        println!(
            "{:<32}  {:<20} {:<10}  {state}",
            c.serial,
            c.common_name,
            date(c.not_after)
        );
    }
    Ok(())
}
