//! The one MQTT client of the load tools: dial (TCP, or TLS with [`TlsArgs`]), CONNECT,
//! wait for the CONNACK, then send and receive packets on a [`Connection`].
//!
//! It is deliberately thin: the load generators own their hot loops (they patch encoded
//! templates in place and decode straight from their read buffer), so a [`Connection`]
//! exposes its stream and buffer rather than hiding them behind a session type.

use clap::Args;
use mytracks_codec::{
    decode, encode, BytesMut, Connect, DecodeLimits, Packet, Properties, ProtocolVersion,
    ReasonCode, Will,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use std::io;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

/// A byte stream to a broker: plain TCP or TLS.
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// TLS options, shared by every tool that speaks MQTT over TLS.
#[derive(Debug, Args, Clone, Default)]
pub struct TlsArgs {
    /// Connect with TLS, trusting this CA.
    #[arg(long, value_name = "FILE")]
    pub cafile: Option<PathBuf>,
    /// Client certificate and key for TLS.
    #[arg(long, value_name = "FILE", requires = "key")]
    pub cert: Option<PathBuf>,
    #[arg(long, value_name = "FILE", requires = "cert")]
    pub key: Option<PathBuf>,
    /// Server name to verify (default: the host).
    #[arg(long)]
    pub server_name: Option<String>,
}

impl TlsArgs {
    /// `tls` when a CA is given, else `tcp` (the scenarios' `transport=`).
    pub fn transport(&self) -> &'static str {
        if self.cafile.is_some() {
            "tls"
        } else {
            "tcp"
        }
    }
}

/// Why the TLS options could not be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{what}: {source}")]
    File {
        what: &'static str,
        source: rustls::pki_types::pem::Error,
    },
    #[error("{0}")]
    Rustls(#[from] rustls::Error),
    #[error("server name: {0}")]
    ServerName(#[from] rustls::pki_types::InvalidDnsNameError),
}

/// Why a connection could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// TCP connect, TLS handshake or the CONNECT write failed (`TimedOut` at the timeout).
    #[error("{0}")]
    Unreachable(io::Error),
    /// The broker answered with an error CONNACK.
    #[error("connection refused: {0}")]
    Refused(ReasonCode),
    #[error("the broker closed the connection before CONNACK")]
    Closed,
    #[error("expected CONNACK, got {0}")]
    Unexpected(&'static str),
    /// Reading the CONNACK failed.
    #[error("no CONNACK: {0}")]
    NoConnAck(io::Error),
    #[error("no CONNACK within {} s", .0.as_secs())]
    TimedOut(Duration),
}

/// What a CONNECT says.
#[derive(Clone, Debug)]
pub struct ConnectOptions<'a> {
    pub client_id: &'a str,
    pub username: Option<&'a str>,
    pub password: Option<&'a str>,
    pub version: ProtocolVersion,
    pub keep_alive: u16,
    pub will: Option<Will>,
}

impl<'a> ConnectOptions<'a> {
    /// MQTT 3.1.1, keep-alive 60 s, no credentials, no will.
    pub fn new(client_id: &'a str) -> ConnectOptions<'a> {
        ConnectOptions {
            client_id,
            username: None,
            password: None,
            version: ProtocolVersion::V3_1_1,
            keep_alive: 60,
            will: None,
        }
    }
}

/// Where to connect, and how.
pub struct Dialer {
    host: String,
    port: u16,
    tls: Option<(tokio_rustls::TlsConnector, ServerName<'static>)>,
    /// Limit on the TCP connect and TLS handshake, and again on the CONNACK.
    timeout: Option<Duration>,
}

impl Dialer {
    /// A dialer for `host:port`, with TLS when `tls` names a CA file (and a client certificate
    /// and key when it names those).
    pub fn new(host: &str, port: u16, tls: &TlsArgs) -> Result<Dialer, TlsError> {
        let tls = match &tls.cafile {
            None => None,
            Some(cafile) => Some(tls_connector(host, cafile, tls)?),
        };
        Ok(Dialer {
            host: host.to_owned(),
            port,
            tls,
            timeout: None,
        })
    }

    /// A plain TCP dialer.
    pub fn tcp(host: &str, port: u16) -> Dialer {
        Dialer {
            host: host.to_owned(),
            port,
            tls: None,
            timeout: None,
        }
    }

    /// Gives up on connecting, and then on the CONNACK, after `timeout` each.
    pub fn with_timeout(mut self, timeout: Duration) -> Dialer {
        self.timeout = Some(timeout);
        self
    }

    /// A connected client (CONNACK received), clean session.
    pub async fn connect(&self, options: &ConnectOptions<'_>) -> Result<Connection, ConnectError> {
        let io = self.dial().await.map_err(ConnectError::Unreachable)?;
        let mut connection = Connection::new(io, options.version);
        let connect = Packet::Connect(Box::new(Connect {
            protocol: options.version,
            clean_start: true,
            keep_alive: options.keep_alive,
            client_id: options.client_id.to_owned().into(),
            will: options.will.clone(),
            username: options.username.map(|u| u.to_owned().into()),
            password: options.password.map(|p| p.as_bytes().to_vec().into()),
            properties: Properties::default(),
        }));
        connection
            .send(&connect)
            .await
            .map_err(ConnectError::Unreachable)?;
        let answer = match self.timeout {
            None => connection.receive().await,
            Some(limit) => tokio::time::timeout(limit, connection.receive())
                .await
                .map_err(|_| ConnectError::TimedOut(limit))?,
        };
        match answer.map_err(ConnectError::NoConnAck)? {
            Some(Packet::ConnAck(ack)) if !ack.reason.is_error() => Ok(connection),
            Some(Packet::ConnAck(ack)) => Err(ConnectError::Refused(ack.reason)),
            Some(other) => Err(ConnectError::Unexpected(other.name())),
            None => Err(ConnectError::Closed),
        }
    }

    /// TCP (no Nagle), then the TLS handshake when configured.
    async fn dial(&self) -> io::Result<Box<dyn Io>> {
        let dial = async {
            let tcp = TcpStream::connect((self.host.as_str(), self.port)).await?;
            tcp.set_nodelay(true)?;
            let io: Box<dyn Io> = match &self.tls {
                None => Box::new(tcp),
                Some((connector, name)) => Box::new(connector.connect(name.clone(), tcp).await?),
            };
            Ok(io)
        };
        match self.timeout {
            None => dial.await,
            Some(limit) => tokio::time::timeout(limit, dial)
                .await
                .unwrap_or_else(|_| Err(io::ErrorKind::TimedOut.into())),
        }
    }
}

fn tls_connector(
    host: &str,
    cafile: &std::path::Path,
    args: &TlsArgs,
) -> Result<(tokio_rustls::TlsConnector, ServerName<'static>), TlsError> {
    let file = |what| move |source| TlsError::File { what, source };
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(cafile).map_err(file("CA file"))? {
        roots.add(cert.map_err(file("CA file"))?)?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots);
    let config = match args.cert.as_deref().zip(args.key.as_deref()) {
        Some((cert, key)) => {
            let certs = CertificateDer::pem_file_iter(cert)
                .map_err(file("certificate file"))?
                .collect::<Result<Vec<_>, _>>()
                .map_err(file("certificate file"))?;
            let key = PrivateKeyDer::from_pem_file(key).map_err(file("key file"))?;
            builder.with_client_auth_cert(certs, key)?
        }
        None => builder.with_no_client_auth(),
    };
    let name = args.server_name.as_deref().unwrap_or(host).to_owned();
    let name = ServerName::try_from(name)?;
    Ok((tokio_rustls::TlsConnector::from(Arc::new(config)), name))
}

/// The protocol of `--version` 3, 4 or 5 (emqtt-bench's numbering: the protocol level).
pub fn protocol_version(version: u8) -> ProtocolVersion {
    match version {
        3 => ProtocolVersion::V3_1,
        4 => ProtocolVersion::V3_1_1,
        _ => ProtocolVersion::V5,
    }
}

/// A connected client: the stream, what has been read from it and not yet decoded, and the
/// protocol version both directions use.
pub struct Connection {
    pub io: Box<dyn Io>,
    pub buf: BytesMut,
    limits: DecodeLimits,
    version: ProtocolVersion,
}

impl Connection {
    fn new(io: Box<dyn Io>, version: ProtocolVersion) -> Connection {
        Connection {
            io,
            buf: BytesMut::with_capacity(4096),
            limits: DecodeLimits::new(version),
            version,
        }
    }

    pub fn version(&self) -> ProtocolVersion {
        self.version
    }

    /// Encodes and writes one packet.
    pub async fn send(&mut self, packet: &Packet) -> io::Result<()> {
        let mut out = BytesMut::new();
        encode(packet, self.version, &mut out)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?;
        self.io.write_all(&out).await
    }

    /// A packet already read, if any.
    pub fn decoded(&mut self) -> io::Result<Option<Packet>> {
        decode(&mut self.buf, &self.limits)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))
    }

    /// Every complete packet already read.
    pub fn decoded_all(&mut self) -> io::Result<Vec<Packet>> {
        let mut out = Vec::new();
        while let Some(packet) = self.decoded()? {
            out.push(packet);
        }
        Ok(out)
    }

    /// Reads more into the buffer (at least `room` bytes of space); 0 when the peer closed.
    pub async fn read_more(&mut self, room: usize) -> io::Result<usize> {
        if self.buf.capacity() - self.buf.len() < room {
            self.buf.reserve(room);
        }
        self.io.read_buf(&mut self.buf).await
    }

    /// The next packet; `None` when the broker closed the connection.
    pub async fn receive(&mut self) -> io::Result<Option<Packet>> {
        loop {
            if let Some(packet) = self.decoded()? {
                return Ok(Some(packet));
            }
            if self.read_more(4096).await? == 0 {
                return Ok(None);
            }
        }
    }
}
