// The JSON shapes of the IoT API (crates/http/src/api/iot.rs) the devices page uses.

/** `GET /api/iot/devices/` items. Times are RFC 3339. */
export interface IotDevice {
  device_id: string;
  owner: string;
  group: string | null;
  description: string;
  online: boolean;
  last_seen: string | null;
  created_at: string;
  rotated_at: string | null;
}

/** `POST /api/iot/devices/`: the device and its MQTT login, shown once. */
export interface RegisteredDevice extends IotDevice {
  username: string;
  password: string;
}

/** `POST /api/iot/devices/{id}/rotate/`. */
export interface Rotated {
  username: string;
  password: string;
}

export interface TelemetryRow {
  time: string;
  ts_ms: number;
  /** The topic below `<base>/devices/<id>/telemetry/`. */
  topic: string;
  data: unknown;
}

/** `GET /api/iot/devices/{id}/telemetry/latest/`. */
export interface LatestTelemetry {
  device_id: string;
  online: boolean;
  last_seen: string | null;
  latest: TelemetryRow[];
}

export type CommandStatus = 'sent' | 'delivered' | 'acknowledged';

/** `GET /api/iot/devices/{id}/commands/` items, newest first. */
export interface IotCommand {
  command_id: string;
  command: string;
  parameters: unknown;
  group: string | null;
  status: CommandStatus | string;
  created_at: string;
  delivered_at: string | null;
  acknowledged_at: string | null;
  response: unknown;
  /** Deliveries completed (PUBCOMP): one per device of a fleet. */
  delivered_count: number;
  /** Answers received on commands/ack. */
  acknowledged_count: number;
}

/** `GET /api/iot/fleets/{group}/commands/`. */
export interface FleetHistory {
  group: string;
  devices: number;
  commands: IotCommand[];
}

/** `POST /api/iot/fleets/{group}/commands/`: the command and how many devices it went to. */
export interface FleetCommand extends IotCommand {
  devices: number;
}

/** What the server writes into the page (pages.rs, shared with the console). */
export interface MqttBoot {
  iot_base_topic: string;
  tcp_port: number | null;
  ws_port: number | null;
  wss_port: number | null;
}
