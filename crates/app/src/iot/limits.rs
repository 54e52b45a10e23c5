//! What IoT devices may cost the server.

/// What one device may cost the server (`[iot]` keys).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IotLimits {
    /// Bytes of telemetry waiting for the writer, all devices together; QoS 1/2 publishers
    /// wait beyond it, QoS 0 telemetry is dropped (and counted).
    pub queue_bytes: usize,
    /// Largest telemetry payload stored; larger ones are refused (v5: PUBACK 0x97).
    pub max_telemetry_bytes: usize,
    /// PUBLISH packets per second a device may send (the broker's rate limit, per device).
    pub device_publish_rate: Option<u32>,
}

impl Default for IotLimits {
    fn default() -> Self {
        IotLimits {
            queue_bytes: 16 * 1024 * 1024,
            max_telemetry_bytes: 64 * 1024,
            device_publish_rate: Some(100),
        }
    }
}
