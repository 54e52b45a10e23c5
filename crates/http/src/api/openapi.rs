//! `GET /api/openapi.json`: an OpenAPI 3.1 description of the API, built from [`OPERATIONS`]
//! (one table, checked against the router by a test, so the document cannot drift from what
//! is served).

use crate::state::HttpState;
use axum::routing::{get, MethodRouter};
use axum::Json;
use serde_json::{json, Map, Value};

/// The routes of this module; [`super::router`] serves them behind its authentication layer.
pub fn routes() -> Vec<(&'static str, MethodRouter<HttpState>)> {
    vec![("/api/openapi.json", get(document))]
}

/// Who may call an operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    Public,
    User,
    Admin,
}

/// One documented operation.
pub struct Operation {
    pub method: &'static str,
    pub path: &'static str,
    pub summary: &'static str,
    pub access: Access,
    /// Schema name of the JSON body, if any.
    pub request: Option<&'static str>,
    /// Success status and schema name (`None`: no body).
    pub response: (u16, Option<&'static str>),
}

const fn op(
    method: &'static str,
    path: &'static str,
    summary: &'static str,
    access: Access,
    request: Option<&'static str>,
    response: (u16, Option<&'static str>),
) -> Operation {
    Operation {
        method,
        path,
        summary,
        access,
        request,
        response,
    }
}

use Access::{Admin, Public, User};

/// Every API operation. Paths are listed with their trailing slash; the bare form works too.
pub const OPERATIONS: &[Operation] = &[
    op(
        "post",
        "/api/auth/login/",
        "Log in: starts a session (cookie) and returns the CSRF token",
        Public,
        Some("Login"),
        (200, Some("LoginResult")),
    ),
    op(
        "post",
        "/api/auth/logout/",
        "Log out: ends the session",
        Public,
        None,
        (200, Some("Detail")),
    ),
    op(
        "get",
        "/api/auth/session/",
        "Whether the caller is logged in, as whom, and the CSRF token",
        Public,
        None,
        (200, Some("SessionState")),
    ),
    op(
        "get",
        "/api/openapi.json",
        "This document",
        Public,
        None,
        (200, None),
    ),
    op(
        "get",
        "/api/account/",
        "The caller's account",
        User,
        None,
        (200, Some("Account")),
    ),
    op(
        "patch",
        "/api/account/",
        "Change email, names or settings",
        User,
        Some("AccountUpdate"),
        (200, Some("Account")),
    ),
    op(
        "delete",
        "/api/account/",
        "Delete one's own account with all its devices and data (password required; refused for the last active admin)",
        User,
        Some("AccountDeletion"),
        (200, Some("AccountDeleted")),
    ),
    op(
        "post",
        "/api/account/change-password/",
        "Change one's password (other sessions and MQTT connections made with the old password end)",
        User,
        Some("PasswordChange"),
        (200, Some("Detail")),
    ),
    op(
        "get",
        "/api/account/tokens/",
        "The caller's API tokens (without secrets)",
        User,
        None,
        (200, Some("TokenList")),
    ),
    op(
        "post",
        "/api/account/tokens/",
        "Create an API token; the secret is shown once",
        User,
        Some("NewToken"),
        (201, Some("Token")),
    ),
    op(
        "delete",
        "/api/account/tokens/{id}/",
        "Revoke an API token",
        User,
        None,
        (204, None),
    ),
    op(
        "get",
        "/api/account/credentials/",
        "The caller's generated MQTT credentials (without passwords)",
        User,
        None,
        (200, Some("CredentialList")),
    ),
    op(
        "post",
        "/api/account/credentials/",
        "Generate an MQTT credential; the password is shown once",
        User,
        Some("NewCredential"),
        (201, Some("Credential")),
    ),
    op(
        "delete",
        "/api/account/credentials/{id}/",
        "Delete a credential; clients using it are disconnected",
        User,
        None,
        (204, None),
    ),
    op(
        "get",
        "/api/account/shares/",
        "Shares given and received",
        User,
        None,
        (200, Some("ShareList")),
    ),
    op(
        "post",
        "/api/account/shares/",
        "Let another user see one's locations",
        User,
        Some("NewShare"),
        (201, Some("Share")),
    ),
    op(
        "delete",
        "/api/account/shares/{id}/",
        "End a share (owner or viewer)",
        User,
        None,
        (204, None),
    ),
    op(
        "get",
        "/api/account/export/",
        "Download all one's data: a ZIP (application/zip, streamed) with the profile, devices, shares, card, locations as GeoJSON/GPX/CSV, transitions, regions, messages, IoT devices and telemetry, and an OwnTracks Recorder store that `mytracks import recorder` reads back. One at a time per user (else 429 with Retry-After), four at once on a server (else 503 with Retry-After)",
        User,
        None,
        (200, None),
    ),
    op(
        "get",
        "/api/admin/users/",
        "All users",
        Admin,
        None,
        (200, Some("UserList")),
    ),
    op(
        "post",
        "/api/admin/users/",
        "Create a user",
        Admin,
        Some("NewUser"),
        (201, Some("User")),
    ),
    op(
        "get",
        "/api/admin/users/{id}/",
        "One user",
        Admin,
        None,
        (200, Some("User")),
    ),
    op(
        "delete",
        "/api/admin/users/{id}/",
        "Deactivate a user (not oneself)",
        Admin,
        None,
        (200, Some("Detail")),
    ),
    op(
        "post",
        "/api/admin/users/{id}/reactivate/",
        "Reactivate a user",
        Admin,
        None,
        (200, Some("Detail")),
    ),
    op(
        "post",
        "/api/admin/users/{id}/toggle-admin/",
        "Grant or remove admin rights (not one's own)",
        Admin,
        None,
        (200, Some("Detail")),
    ),
    op(
        "post",
        "/api/admin/users/{id}/set-password/",
        "Set another user's password (their sessions end; revoke_access, by default, revokes the rest)",
        Admin,
        Some("SetPassword"),
        (200, Some("Detail")),
    ),
    op(
        "get",
        "/api/admin/users/{id}/export/",
        "Download all of a user's data (the ZIP of /api/account/export/)",
        Admin,
        None,
        (200, None),
    ),
    op(
        "delete",
        "/api/admin/users/{id}/hard-delete/",
        "Delete a user and all their data (not oneself)",
        Admin,
        None,
        (200, Some("Detail")),
    ),
    op("get", "/api/devices/", "Devices the caller may see (own, shared with them; all for admins), with their last location", User, None, (200, Some("DeviceList"))),
    op("get", "/api/devices/{id}/", "One visible device", User, None, (200, Some("Device"))),
    op("patch", "/api/devices/{id}/", "Rename a device (display name) or set/clear its OwnTracks payload key (owner or admin)", User, Some("DeviceUpdate"), (200, Some("Device"))),
    op("delete", "/api/devices/{id}/", "Delete a device (owner or admin; never through a share): its locations, transitions, regions, messages, the MQTT credentials made for it (connections closed) and its retained messages", User, None, (200, Some("DeviceDeleted"))),
    op("get", "/api/devices/{id}/history/", "What deleting ?start_time=&end_time= (Unix seconds, both required, inclusive) would delete (owner or admin)", User, None, (200, Some("RangeCounts"))),
    op("delete", "/api/devices/{id}/history/", "Delete a device's locations and transitions with start_time <= tst <= end_time and its messages received then (owner or admin); the retained location is cleared if its tst is in the range", User, None, (200, Some("RangeDeleted"))),
    op("delete", "/api/locations/{id}/", "Delete one location (owner or admin); the retained location is cleared if it is this one's time", User, None, (200, Some("RangeDeleted"))),
    op("get", "/api/locations/", "Location history (own, or shared with history): ?user=&device=&start_time=&end_time= (Unix seconds, inclusive) &limit=&format=json|geojson|gpx|csv; oldest first", User, None, (200, Some("LocationList"))),
    op("post", "/api/locations/", "OwnTracks HTTP mode at the original My Tracks URL (same as /pub; HTTP Basic)", Public, Some("OwnTracksMessage"), (200, Some("OwnTracksAnswer"))),
    op("get", "/api/locations/last/", "The last location of every visible device", User, None, (200, Some("LocationList"))),
    op("get", "/api/locations/last-known/", "The same, as {results: [...]} (the original API's name)", User, None, (200, None)),
    op("get", "/api/transitions/", "Region transitions (same filters as locations)", User, None, (200, None)),
    op("get", "/api/waypoints/", "The current regions of visible devices: ?device=", User, None, (200, None)),
    op("post", "/api/commands/report-location/", "Ask a phone for its location", User, Some("Command"), (200, Some("CommandResult"))),
    op("post", "/api/commands/set-waypoints/", "Send regions to a phone (given ones, or the stored ones)", User, Some("Command"), (200, Some("CommandResult"))),
    op("post", "/api/commands/clear-waypoints/", "Remove a phone's regions", User, Some("Command"), (200, Some("CommandResult"))),
    op("post", "/api/commands/set-configuration/", "Change a phone's settings (remote configuration must be on)", User, Some("Command"), (200, Some("CommandResult"))),
    op("post", "/api/commands/request-waypoints/", "Ask a phone to publish its regions", User, Some("Command"), (200, Some("CommandResult"))),
    op("post", "/api/commands/fetch-waypoints/", "The same (the original API's name)", User, Some("Command"), (200, Some("CommandResult"))),
    op("post", "/api/commands/status/", "Ask an Android phone for its status", User, Some("Command"), (200, Some("CommandResult"))),
    op("post", "/api/commands/dump/", "Ask an iOS phone for its configuration", User, Some("Command"), (200, Some("CommandResult"))),
    op("get", "/ws/locations/", "Live feed (WebSocket; cookie, bearer or ?token=): location, transition, waypoint (history viewers only) and presence events", User, None, (101, None)),
    op("get", "/api/0/version/", "Recorder API (also POST): {version: \"1.0.1\", git, mytracks}", User, None, (200, None)),
    op("get", "/api/0/list/", "Recorder API (also POST): visible users; ?user= their devices; ?user=&device= months with data (history rule) as rec/U/D/YYYY-MM.rec; {results: [...]}", User, None, (200, None)),
    op("get", "/api/0/last/", "Recorder API (also POST): the last location of every visible device with topic, username, device, ghash, isotst, disptst, card name and face; ?user=&device=&fields=a,b", User, None, (200, None)),
    op("get", "/api/0/locations/", "Recorder API (also POST): one device's history (history rule), streamed: ?user=&device= (416 without), from/to in the Recorder's UTC formats (default the last 6 h, bounds exclusive), limit (newest N, newest first), fields, format=json|geojson|geojsonpoi|linestring|csv|xml|gpx", User, None, (200, None)),
    op("get", "/api/0/q/", "Recorder API (also POST): reverse-geocoding cache; always {} here", User, None, (200, None)),
    op("get", "/api/0/photo/", "Recorder API (also POST): ?user= that user's card face (PNG), else a placeholder PNG", User, None, (200, None)),
    op("get", "/api/0/monitor/", "Recorder API (also POST): text \"<epoch> <topic>\" of the visible device heard from last", User, None, (200, None)),
    op("post", "/api/0/kill/", "Recorder API: delete a device and its data (owner or admin; ?user=&device=); GET is refused (405)", User, None, (200, None)),
    op("get", "/ws/last", "Recorder WebSocket (cookie, bearer, Basic or ?token=): send LAST for the last location of every visible device (this connection only), then live locations, transitions and waypoints (history rule)", User, None, (101, None)),
    op("get", "/api/admin/ca/", "The active certificate authority", Admin, None, (200, None)),
    op("post", "/api/admin/ca/", "Generate (common_name, algorithm ecdsa-p256|rsa-2048|rsa-3072|rsa-4096, validity_days) or import (certificate_pem, key_pem) the active CA", Admin, None, (201, None)),
    op("delete", "/api/admin/ca/", "Deactivate the active CA (kept in the history)", Admin, None, (200, Some("Detail"))),
    op("get", "/api/admin/ca/history/", "Every CA, newest first", Admin, None, (200, None)),
    op("delete", "/api/admin/ca/history/", "Expunge inactive CAs and their certificates", Admin, None, (200, None)),
    op("get", "/api/admin/ca/download/", "The CA certificate, ?format=pem|der", Admin, None, (200, None)),
    op("get", "/api/admin/server-certificates/", "Server certificates", Admin, None, (200, None)),
    op("post", "/api/admin/server-certificates/", "Issue a server certificate (names, validity_days)", Admin, None, (201, None)),
    op("post", "/api/admin/server-certificates/{id}/deactivate/", "Stop presenting a server certificate", Admin, None, (200, Some("Detail"))),
    op("get", "/api/admin/certificates/", "Client certificates", Admin, None, (200, None)),
    op("post", "/api/admin/certificates/", "Issue a client certificate for a user (user_id, validity_years 1-5, organization, organizational_unit)", Admin, None, (201, None)),
    op("post", "/api/admin/certificates/{id}/revoke/", "Revoke a certificate; the CRL is reissued at once", Admin, None, (200, None)),
    op("delete", "/api/admin/certificates/{id}/", "Expunge a certificate", Admin, None, (204, None)),
    op("get", "/api/account/certificate/", "One's valid client certificate (?format=pem: bundle with the key)", User, None, (200, None)),
    op("post", "/api/account/certificate/", "Issue one's certificate if none (renew: true for a new one, revoking the previous ones); format p12|otrp with passphrase downloads PKCS#12", User, None, (201, None)),
    op("delete", "/api/account/certificate/", "Revoke one's certificate", User, None, (200, None)),
    op("get", "/api/account/certificates/", "Every client certificate issued to one (revoked and expired too), without keys", User, None, (200, None)),
    op("post", "/api/account/certificates/{id}/revoke/", "Revoke one of one's certificates; the CRL is reissued at once", User, None, (200, None)),
    op("get", "/api/pki/crl/", "The active CA's current CRL (?format=pem|der)", Public, None, (200, None)),
    op("get", "/api/account/certificate/status/", "One's valid client certificate (without key) and the active CA, or null: always 200", User, None, (200, None)),
    op("get", "/api/setup/", "This server's endpoints as the caller reached it (HTTP, OwnTracks HTTP, WebSocket URLs; the actual MQTT, MQTT-TLS, WS and WSS ports, null when off) and the active CA's certificate", User, None, (200, None)),
    op("post", "/api/setup/device-config/", "An OwnTracks configuration for one of the caller's devices (device, mode mqtt|mqtt-tls|http, tid, credential: true generates a device credential whose password is only in this answer): the .otrc object and its owntracks:///config?inline= link", User, None, (200, None)),
    op("post", "/api/mqtt/emqx/authn", "EMQX HTTP authentication: the broker's login check for an external EMQX (Authorization: Bearer [integrations] http_auth_secret). Always 200: anything it cannot decide (no or a wrong secret, a bad body) is deny, with an error", Public, Some("EmqxAuthn"), (200, Some("EmqxResult"))),
    op("post", "/api/mqtt/emqx/authz", "EMQX HTTP authorization: the broker's ACL decision for a publish or subscribe (same secret as authn; always 200)", Public, Some("EmqxAuthz"), (200, Some("EmqxResult"))),
    op("post", "/api/mqtt/rmqtt/authn", "rmqtt auth-http authentication (same secret; JSON, form or query fields clientid, username, password, peerhost). Always 200 JSON, never ignore: what mytracks cannot decide or does not know is deny", Public, Some("RmqttAuthn"), (200, Some("RmqttResult"))),
    op("post", "/api/mqtt/rmqtt/authz", "rmqtt auth-http ACL (action \"1\" subscribe, \"2\" publish; same secret; always 200 JSON, never ignore)", Public, Some("RmqttAuthz"), (200, Some("RmqttResult"))),
    op("get", "/api/mqtt/status/", "The broker: version, uptime, connections, message counts, subscriptions, retained messages, listeners and ports", User, None, (200, None)),
    op("post", "/api/mqtt/publish/", "Publish as the caller within their ACL (topic, payload, encoding utf8|base64, qos, retain); 403 outside it", User, None, (200, Some("Detail"))),
    op("get", "/api/mqtt/topics/structure/", "The topic tree: retained topics the caller may read; for admins also the subscription filters in use", User, None, (200, None)),
    op("post", "/api/mqtt/topics/validate/", "Is a topic name (topic) or filter (filter) well formed, and may the caller publish or subscribe to it", User, None, (200, None)),
    op("get", "/api/mqtt/clients/", "Connected MQTT clients: id, user, protocol, listener, address, since, subscriptions, queued and in-flight messages", Admin, None, (200, None)),
    op("post", "/api/mqtt/console/credential/", "{tab}: an MQTT credential for the browser console in this tab of this web session (username, password, client_id, path /mqtt, expires_at): one per tab, replaced when asked again, deleted when the session ends, expires after 12 h; 403 without a session", User, None, (201, None)),
    op("delete", "/api/mqtt/clients/{client_id}/", "Disconnect a client (MQTT 5 clients hear 0x98 Administrative action)", Admin, None, (200, Some("Detail"))),
    op("get", "/api/mqtt/monitoring/metrics/", "The /metrics figures as JSON: connections, auth failures, messages by QoS, bytes, drops, OwnTracks ingest and commit latency buckets", Admin, None, (200, None)),
    op("get", "/metrics", "Prometheus text format (admins; scrape with an admin's API token)", Admin, None, (200, None)),
    op("get", "/api/iot/devices/", "The caller's IoT devices (admins: all)", User, None, (200, None)),
    op("post", "/api/iot/devices/", "Register an IoT device (device_id, group, description; owner: admins only); the answer holds its MQTT username and password, once", User, None, (201, None)),
    op("get", "/api/iot/devices/{device_id}/", "One device (its owner or an admin; 404 for others)", User, None, (200, None)),
    op("patch", "/api/iot/devices/{device_id}/", "Change a device's group or description", User, None, (200, None)),
    op("delete", "/api/iot/devices/{device_id}/", "Remove a device with its telemetry; its connections close", User, None, (204, None)),
    op("post", "/api/iot/devices/{device_id}/rotate/", "A new MQTT password for a device (in the answer, once); its connections close", User, None, (200, None)),
    op("get", "/api/iot/devices/{device_id}/telemetry/", "Telemetry in a window (?start_time=&end_time= Unix seconds, default the last day; topic; limit; format json|csv)", User, None, (200, None)),
    op("post", "/api/iot/devices/{device_id}/commands/", "Send {command, parameters} at QoS 2 with a command_id and timestamp; status sent, then delivered (PUBCOMP) and acknowledged (the device answers on commands/ack)", User, None, (201, None)),
    op("get", "/api/iot/devices/{device_id}/commands/", "A device's commands, newest first, with status and answer", User, None, (200, None)),
    op("get", "/api/iot/devices/{device_id}/config/", "The device's configuration: the retained message on <base>/devices/<id>/config (null when none)", User, None, (200, None)),
    op("put", "/api/iot/devices/{device_id}/config/", "Replace the configuration with a JSON object, published retained at QoS 1 on the device's config topic", User, None, (200, None)),
    op("delete", "/api/iot/devices/{device_id}/config/", "Clear the configuration (the retained message is removed)", User, None, (204, None)),
    op("get", "/api/iot/fleets/{group}/commands/", "A group's commands, newest first, with delivered_count (PUBCOMPs) and acknowledged_count (answers), and the group's device count", User, None, (200, None)),
    op("post", "/api/iot/fleets/{group}/commands/", "Send a command to every device of a group (QoS 2 on <base>/fleet/<group>/commands)", User, None, (201, None)),
    op("get", "/api/iot/devices/{device_id}/telemetry/latest/", "The newest telemetry per topic, presence and last seen", User, None, (200, None)),
    op("post", "/api/imports/", "Import location history into one's own account: the file is the raw body (application/octet-stream, not multipart), ?device= (required), format=auto|rec|gpx|geojson|csv|takeout-records|takeout-semantic|takeout-timeline, filename=, dry_run=true. 202 with the queued job, which runs in the background; 413 beyond [web] max_import_bytes, 507 when the disk would keep under 1 GiB free (counting what the uploads arriving at the same time may still write), 503 with Retry-After when 4 uploads are arriving on the server already, 429 with 3 unfinished imports, 400 bad device or format", User, None, (202, Some("ImportJob"))),
    op("get", "/api/imports/", "One's imports, newest first (at most 100)", User, None, (200, Some("ImportJobList"))),
    op("get", "/api/imports/{id}/", "One import (its owner or an admin; 404 for others): state uploading|queued|running|done|failed, bytes read of bytes_total, items read and written, then the summary (stored, already there, skipped by reason, the first problems) or the error", User, None, (200, Some("ImportJob"))),
];

fn schemas() -> Value {
    let mut schemas = api_schemas();
    if let (Value::Object(all), Value::Object(broker)) = (&mut schemas, broker_auth_schemas()) {
        all.extend(broker);
    }
    schemas
}

/// What external brokers send to the HTTP auth endpoints (`mqtt_auth/`), and get back.
fn broker_auth_schemas() -> Value {
    let string = json!({ "type": "string" });
    json!({
        "EmqxAuthn": { "type": "object", "description": "EMQX's HTTP authenticator body", "properties": {
            "clientid": string, "username": string, "password": { "type": "string", "format": "password" },
            "peerhost": string, "cert_common_name": string } },
        "EmqxAuthz": { "type": "object", "description": "EMQX's HTTP authorizer body", "properties": {
            "clientid": string, "username": string, "peerhost": string,
            "action": { "enum": ["publish", "subscribe"] }, "topic": string,
            "qos": { "type": ["integer", "string"] }, "retain": { "type": ["boolean", "string"] } } },
        "EmqxResult": { "type": "object", "required": ["result"], "properties": {
            "result": { "enum": ["allow", "deny", "ignore"] }, "is_superuser": { "type": "boolean" },
            "error": string } },
        "RmqttAuthn": { "type": "object", "description": "rmqtt auth-http authentication parameters", "properties": {
            "clientid": string, "username": string, "password": { "type": "string", "format": "password" },
            "peerhost": string, "protocol": string } },
        "RmqttAuthz": { "type": "object", "description": "rmqtt auth-http ACL parameters", "properties": {
            "clientid": string, "username": string, "peerhost": string,
            "action": { "enum": ["1", "2"] }, "topic": string } },
        "RmqttResult": { "type": "object", "required": ["result"], "properties": {
            "result": { "enum": ["allow", "deny"] }, "superuser": { "type": "boolean" }, "error": string } },
    })
}

fn api_schemas() -> Value {
    let string = json!({ "type": "string" });
    let time = json!({ "type": "string", "format": "date-time" });
    let optional_time = json!({ "type": ["string", "null"], "format": "date-time" });
    json!({
        "Error": { "type": "object", "required": ["error"], "properties": {
            "error": string, "field": { "type": "string", "description": "The invalid field, for validation errors" } } },
        "Detail": { "type": "object", "properties": { "detail": string } },
        "Login": { "type": "object", "required": ["username", "password"], "properties": {
            "username": string, "password": { "type": "string", "format": "password" } } },
        "LoginResult": { "type": "object", "properties": {
            "detail": string, "user": { "$ref": "#/components/schemas/Account" }, "csrf_token": string } },
        "SessionState": { "type": "object", "properties": {
            "authenticated": { "type": "boolean" }, "user": { "$ref": "#/components/schemas/Account" },
            "csrf_token": { "type": ["string", "null"] } } },
        "Account": { "type": "object", "properties": {
            "id": { "type": "integer" }, "username": string, "email": string, "first_name": string,
            "last_name": string, "is_staff": { "type": "boolean" }, "is_admin": { "type": "boolean" },
            "created_at": time, "date_joined": time, "last_login": optional_time,
            "settings": { "type": "object" } } },
        "AccountUpdate": { "type": "object", "properties": {
            "email": string, "first_name": string, "last_name": string, "settings": { "type": "object" },
            "encryption_key": { "type": ["string", "null"], "description": "OwnTracks payload passphrase for devices without their own" } } },
        "AccountDeletion": { "type": "object", "required": ["password"], "properties": {
            "password": { "type": "string", "format": "password" } } },
        "AccountDeleted": { "type": "object", "properties": {
            "detail": string, "devices": { "type": "integer" }, "locations": { "type": "integer" } } },
        "RangeCounts": { "type": "object", "properties": {
            "device_id": { "type": "integer" }, "from": { "type": "integer" }, "to": { "type": "integer" },
            "locations": { "type": "integer" }, "transitions": { "type": "integer" }, "messages": { "type": "integer" } } },
        "RangeDeleted": { "type": "object", "properties": {
            "device_id": { "type": "integer" }, "from": { "type": "integer" }, "to": { "type": "integer" },
            "locations": { "type": "integer" }, "transitions": { "type": "integer" }, "messages": { "type": "integer" },
            "retained_cleared": { "type": "boolean" }, "retained_queued": { "type": "boolean" } } },
        "DeviceDeleted": { "type": "object", "properties": {
            "device_id": { "type": "integer" }, "user": string, "device": string,
            "locations": { "type": "integer" }, "transitions": { "type": "integer" }, "waypoints": { "type": "integer" },
            "messages": { "type": "integer" }, "commands": { "type": "integer" },
            "credentials": { "type": "integer", "description": "MQTT credentials made for the device, deleted" },
            "retained": { "type": "integer", "description": "Retained messages cleared" },
            "retained_queued": { "type": "boolean" } } },
        "PasswordChange": { "type": "object", "required": ["current_password", "new_password"], "properties": {
            "current_password": string, "new_password": { "type": "string", "minLength": 10 },
            "revoke_access": { "type": "boolean", "default": false, "description": "Also delete all API tokens and MQTT credentials, revoke all client certificates and close all MQTT connections" } } },
        "User": { "type": "object", "properties": {
            "id": { "type": "integer" }, "username": string, "email": string, "first_name": string,
            "last_name": string, "is_active": { "type": "boolean" }, "is_staff": { "type": "boolean" },
            "is_admin": { "type": "boolean" }, "date_joined": time, "last_login": optional_time } },
        "UserList": { "type": "array", "items": { "$ref": "#/components/schemas/User" } },
        "NewUser": { "type": "object", "required": ["username", "password"], "properties": {
            "username": { "type": "string", "pattern": "^[\\w.@-]+$", "maxLength": 150 },
            "password": { "type": "string", "minLength": 10 }, "email": string,
            "first_name": string, "last_name": string, "is_staff": { "type": "boolean" } } },
        "SetPassword": { "type": "object", "required": ["password"], "properties": {
            "password": { "type": "string", "minLength": 10 },
            "revoke_access": { "type": "boolean", "default": true, "description": "Also delete the user's API tokens and MQTT credentials, revoke their client certificates and close their MQTT connections" } } },
        "Token": { "type": "object", "properties": {
            "id": { "type": "integer" }, "label": string, "prefix": string, "created_at": time,
            "last_used_at": optional_time, "expires_at": optional_time,
            "token": { "type": "string", "description": "Only in the creation answer" } } },
        "TokenList": { "type": "array", "items": { "$ref": "#/components/schemas/Token" } },
        "NewToken": { "type": "object", "properties": {
            "label": string, "expires_in_days": { "type": "integer", "minimum": 1, "maximum": 3650 } } },
        "Credential": { "type": "object", "properties": {
            "id": { "type": "integer" }, "username": string, "device": string, "label": string,
            "created_at": time, "last_used_at": optional_time, "expires_at": optional_time,
            "password": { "type": "string", "description": "Only in the creation answer" } } },
        "CredentialList": { "type": "array", "items": { "$ref": "#/components/schemas/Credential" } },
        "NewCredential": { "type": "object", "properties": {
            "device": string, "label": string, "expires_in_days": { "type": "integer", "minimum": 1, "maximum": 3650 } } },
        "Share": { "type": "object", "properties": {
            "id": { "type": "integer" }, "owner": string, "viewer": string,
            "direction": { "enum": ["outgoing", "incoming"] }, "history": { "type": "boolean" }, "created_at": time } },
        "ShareList": { "type": "array", "items": { "$ref": "#/components/schemas/Share" } },
        "NewShare": { "type": "object", "required": ["username"], "properties": {
            "username": string, "history": { "type": "boolean" } } },
        "Location": { "type": "object", "properties": {
            "id": { "type": "integer" }, "device_id": { "type": "integer" }, "user": string, "device": string,
            "tst": { "type": "integer" }, "timestamp": time, "lat": { "type": "number" }, "lon": { "type": "number" },
            "acc": { "type": "number" }, "alt": { "type": "number" }, "vac": { "type": "number" }, "vel": { "type": "number" },
            "cog": { "type": "number" }, "batt": { "type": "integer" }, "bs": { "type": "integer" }, "tid": string,
            "conn": string, "t": string, "received_at": time } },
        "LocationList": { "type": "array", "items": { "$ref": "#/components/schemas/Location" } },
        "Device": { "type": "object", "properties": {
            "id": { "type": "integer" }, "user": string, "name": { "type": "string", "description": "The device part of the topic" },
            "display_name": string, "tid": { "type": ["string", "null"] }, "online": { "type": "boolean" },
            "last_seen": optional_time, "offline_since": optional_time, "transport": { "enum": ["mqtt", "http"] },
            "has_encryption_key": { "type": "boolean" }, "topic": string,
            "last_location": { "oneOf": [{ "$ref": "#/components/schemas/Location" }, { "type": "null" }] } } },
        "DeviceList": { "type": "array", "items": { "$ref": "#/components/schemas/Device" } },
        "DeviceUpdate": { "type": "object", "properties": {
            "name": string, "encryption_key": { "type": ["string", "null"] } } },
        "Command": { "type": "object", "properties": {
            "user": string, "device": string, "device_id": { "oneOf": [{ "type": "integer" }, { "type": "string" }] },
            "waypoints": { "type": "array", "items": { "type": "object" } }, "configuration": { "type": "object" } } },
        "CommandResult": { "type": "object", "properties": {
            "detail": string, "status": string, "action": string, "topic": string, "device_id": { "type": "integer" },
            "queued_for_http": { "type": "boolean" }, "command": { "type": "object" } } },
        "OwnTracksMessage": { "type": "object", "description": "One OwnTracks JSON message (_type location, transition, card...)" },
        "OwnTracksAnswer": { "type": "array", "items": { "type": "object" }, "description": "Friends' cards and last locations, then queued commands" },
        "ImportJob": { "type": "object", "properties": {
            "id": { "type": "integer" }, "device": string, "format": string, "filename": string,
            "dry_run": { "type": "boolean" },
            "state": { "enum": ["uploading", "queued", "running", "done", "failed"] },
            "bytes_total": { "type": "integer" }, "bytes_read": { "type": "integer" },
            "items": { "type": "integer" }, "written": { "type": "integer" },
            "summary": { "type": ["object", "null"], "description": "valid, stored {locations, location_copies, transitions, transition_copies, messages, message_copies, waypoints, cards}, skipped {reason: count}, problems, notes, aborted" },
            "error": { "type": ["string", "null"] }, "created_at": time, "finished_at": optional_time } },
        "ImportJobList": { "type": "array", "items": { "$ref": "#/components/schemas/ImportJob" } },
    })
}

fn reference(name: &str) -> Value {
    json!({ "$ref": format!("#/components/schemas/{name}") })
}

fn error_response(description: &str) -> Value {
    json!({ "description": description, "content": { "application/json": { "schema": reference("Error") } } })
}

/// The whole document.
pub fn build() -> Value {
    let mut paths = Map::new();
    for operation in OPERATIONS {
        let mut responses = Map::new();
        let (status, schema) = operation.response;
        let mut success = json!({ "description": "Success" });
        if let Some(schema) = schema {
            success["content"] = json!({ "application/json": { "schema": reference(schema) } });
        }
        responses.insert(status.to_string(), success);
        if operation.request.is_some() {
            responses.insert(
                "400".into(),
                error_response("Invalid input; `field` names it"),
            );
        }
        let mut entry = json!({
            "summary": operation.summary,
            "operationId": format!("{} {}", operation.method, operation.path),
        });
        match operation.access {
            Public => entry["security"] = json!([]),
            User | Admin => {
                responses.insert("401".into(), error_response("Not authenticated"));
                if operation.access == Admin {
                    responses.insert("403".into(), error_response("Not an admin"));
                }
                entry["security"] =
                    json!([{ "session": [], "csrf": [] }, { "bearer": [] }, { "basic": [] }]);
            }
        }
        if operation.path.contains("{id}") {
            responses.insert("404".into(), error_response("No such item"));
            entry["parameters"] = json!([{ "name": "id", "in": "path", "required": true, "schema": { "type": "integer" } }]);
        }
        if let Some(request) = operation.request {
            entry["requestBody"] = json!({ "required": true, "content": { "application/json": { "schema": reference(request) } } });
        }
        responses.insert("503".into(), error_response("The database is unavailable"));
        entry["responses"] = Value::Object(responses);
        let path = paths.entry(operation.path).or_insert_with(|| json!({}));
        path[operation.method] = entry;
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "mytracks API",
            "version": mytracks_app::VERSION,
            "description": "Accounts, tokens, MQTT credentials and sharing. Paths follow the original My Tracks API; the trailing slash is optional. Cookie-authenticated mutations must send the CSRF token in X-CSRFToken.",
        },
        "paths": paths,
        "components": {
            "schemas": schemas(),
            "securitySchemes": {
                "session": { "type": "apiKey", "in": "cookie", "name": super::auth::SESSION_COOKIE },
                "csrf": { "type": "apiKey", "in": "header", "name": "X-CSRFToken" },
                "bearer": { "type": "http", "scheme": "bearer" },
                "basic": { "type": "http", "scheme": "basic" },
            },
        },
    })
}

pub async fn document() -> Json<Value> {
    Json(build())
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_reference_names_a_schema() {
        let document = super::build();
        let schemas = document["components"]["schemas"].as_object().unwrap();
        assert!(schemas.contains_key("EmqxAuthn") && schemas.contains_key("Account"));
        let text = document.to_string();
        for reference in text.split("#/components/schemas/").skip(1) {
            let name = reference.split('"').next().unwrap();
            assert!(schemas.contains_key(name), "no schema {name}");
        }
    }
}
