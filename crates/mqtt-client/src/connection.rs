//! One connection: dial (TCP, or TLS with [`TlsOptions`]), CONNECT, wait for the CONNACK,
//! then send and receive packets on a [`Connection`].
//!
//! It is deliberately thin: the load generators own their hot loops (they patch encoded
//! templates in place and decode straight from their read buffer), so a [`Connection`]
//! exposes its stream and buffer rather than hiding them behind a session type. The
//! reconnecting [`Session`](crate::Session) is built on it.

use crate::tls::{tls_connector, TlsConnector, TlsError, TlsOptions};
use crate::url::BrokerUrl;
use mytracks_codec::{
    decode, encode, BytesMut, ConnAck, Connect, DecodeLimits, Packet, Properties, ProtocolVersion,
    ReasonCode, Will,
};
use std::io;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

/// A byte stream to a broker: plain TCP or TLS.
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

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
    /// Clean Start (5) / Clean Session (3.x): false resumes the session the broker kept.
    pub clean_start: bool,
    /// MQTT 5 Session Expiry Interval in seconds (`None`: not sent, which means 0).
    pub session_expiry: Option<u32>,
    /// MQTT 5 Receive Maximum: QoS 1/2 deliveries the broker may leave unacknowledged to us
    /// (`None`: not sent, which means 65,535).
    pub receive_maximum: Option<u16>,
    /// The largest packet accepted, fixed header included: told to an MQTT 5 broker (which
    /// then drops bigger messages for us) and enforced by the decoder (`None`: MQTT's limit).
    pub max_packet_size: Option<u32>,
}

impl<'a> ConnectOptions<'a> {
    /// MQTT 3.1.1, keep-alive 60 s, clean session, no credentials, no will, no properties.
    pub fn new(client_id: &'a str) -> ConnectOptions<'a> {
        ConnectOptions {
            client_id,
            username: None,
            password: None,
            version: ProtocolVersion::V3_1_1,
            keep_alive: 60,
            will: None,
            clean_start: true,
            session_expiry: None,
            receive_maximum: None,
            max_packet_size: None,
        }
    }

    /// The MQTT 5 CONNECT properties (none for 3.x, which has no properties).
    fn properties(&self) -> Properties {
        if !self.version.is_v5() {
            return Properties::default();
        }
        Properties {
            session_expiry_interval: self.session_expiry,
            receive_maximum: self.receive_maximum,
            maximum_packet_size: self.max_packet_size,
            ..Properties::default()
        }
    }
}

/// Where to connect, and how.
pub struct Dialer {
    host: String,
    port: u16,
    tls: Option<TlsConnector>,
    /// Limit on the TCP connect and TLS handshake, and again on the CONNACK.
    timeout: Option<Duration>,
}

impl Dialer {
    /// A dialer for `host:port`, with TLS when `tls` names a CA file (and a client certificate
    /// and key when it names those).
    pub fn new(host: &str, port: u16, tls: &TlsOptions) -> Result<Dialer, TlsError> {
        let tls = match &tls.ca_file {
            None => None,
            Some(_) => Some(tls_connector(host, tls)?),
        };
        Ok(Dialer {
            host: host.to_owned(),
            port,
            tls,
            timeout: None,
        })
    }

    /// A dialer for `url`: TLS with `tls` for `mqtts://` (a CA file is then required), plain
    /// TCP for `mqtt://` (`tls` unused).
    pub fn for_url(url: &BrokerUrl, tls: &TlsOptions) -> Result<Dialer, TlsError> {
        let tls = match url.tls {
            true => Some(tls_connector(&url.host, tls)?),
            false => None,
        };
        Ok(Dialer {
            host: url.host.clone(),
            port: url.port,
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

    /// A connected client (CONNACK received).
    pub async fn connect(&self, options: &ConnectOptions<'_>) -> Result<Connection, ConnectError> {
        self.connect_with_ack(options)
            .await
            .map(|(connection, _)| connection)
    }

    /// [`Dialer::connect`], also returning the CONNACK (session present, the broker's limits).
    pub async fn connect_with_ack(
        &self,
        options: &ConnectOptions<'_>,
    ) -> Result<(Connection, ConnAck), ConnectError> {
        let io = self.dial().await.map_err(ConnectError::Unreachable)?;
        let mut connection = Connection::new(io, options.version);
        if let Some(max) = options.max_packet_size {
            connection.limits.max_packet_size = max;
        }
        let connect = Packet::Connect(Box::new(Connect {
            protocol: options.version,
            clean_start: options.clean_start,
            keep_alive: options.keep_alive,
            client_id: options.client_id.to_owned().into(),
            will: options.will.clone(),
            username: options.username.map(|u| u.to_owned().into()),
            password: options.password.map(|p| p.as_bytes().to_vec().into()),
            properties: options.properties(),
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
            Some(Packet::ConnAck(ack)) if !ack.reason.is_error() => Ok((connection, ack)),
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
