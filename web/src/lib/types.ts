// The JSON shapes of the API answers the pages use (see /api/openapi.json).

export interface Account {
  id: number;
  username: string;
  email: string;
  first_name: string;
  last_name: string;
  is_admin: boolean;
  last_login: string | null;
}

export interface User extends Account {
  is_active: boolean;
  date_joined: string;
}

export interface Location {
  id?: number;
  device_id?: number;
  user?: string;
  device?: string;
  tst: number;
  lat: number;
  lon: number;
  acc?: number;
  alt?: number;
  vel?: number;
  cog?: number;
  batt?: number;
  tid?: string;
  conn?: string;
  t?: string;
}

export interface Device {
  id: number;
  user: string;
  name: string;
  display_name: string;
  tid: string | null;
  online: boolean;
  last_seen: string | null;
  offline_since: string | null;
  transport: string;
  has_encryption_key: boolean;
  topic: string;
  last_location: Location | null;
}

export interface Transition {
  id: number;
  device_id: number;
  tst: number;
  lat: number | null;
  lon: number | null;
  event: string;
  desc: string | null;
  tid: string | null;
}

export interface Token {
  id: number;
  label: string;
  prefix: string;
  created_at: string;
  last_used_at: string | null;
  expires_at: string | null;
  token?: string;
}

export interface Credential {
  id: number;
  username: string;
  device: string;
  label: string;
  created_at: string;
  last_used_at: string | null;
  expires_at: string | null;
  password?: string;
}

export interface Share {
  id: number;
  owner: string;
  viewer: string;
  direction: 'outgoing' | 'incoming';
  history: boolean;
  created_at: string;
}

export interface Ca {
  id: number;
  common_name: string;
  algorithm: string;
  serial: string;
  fingerprint: string;
  not_valid_before: string;
  not_valid_after: string;
  is_active: boolean;
  imported: boolean;
  created_at: string;
  deactivated_at: string | null;
}

export interface Certificate {
  id: number;
  kind: string;
  user_id: number | null;
  username: string | null;
  common_name: string;
  names: string[];
  serial_number: string;
  fingerprint: string;
  not_valid_before: string;
  not_valid_after: string;
  is_active: boolean;
  revoked: boolean;
  revoked_at: string | null;
  created_at: string;
}

/** A live feed message from /ws/locations/. */
export interface FeedEvent {
  type: 'welcome' | 'location' | 'transition' | 'presence' | 'lagged';
  user?: string;
  device?: string;
  device_id?: number;
  data?: Record<string, unknown>;
}

export interface Setup {
  version: string;
  username: string;
  host: string;
  http_url: string;
  owntracks_http_url: string;
  websocket_url: string;
  live_feed_url: string;
  ports: {
    http: number | null;
    mqtt: number | null;
    mqtt_tls: number | null;
    mqtt_ws: number | null;
    mqtt_wss: number | null;
  };
  ca: { common_name: string; fingerprint: string; not_valid_after: string; certificate_pem: string } | null;
}

export interface DeviceConfigAnswer {
  configuration: Record<string, unknown>;
  inline_url: string;
  file_name: string;
  credential: Credential | null;
}

/** GET /api/account/certificate/status/. */
export interface CertificateStatus {
  ca: { common_name: string; fingerprint: string } | null;
  certificate: {
    id: number;
    common_name: string;
    serial_number: string;
    fingerprint: string;
    not_valid_before: string;
    not_valid_after: string;
  } | null;
}
