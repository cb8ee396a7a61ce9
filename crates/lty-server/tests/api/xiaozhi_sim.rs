//! A simulated xiaozhi-esp32 device, built from the protocol spec
//! (`shared/devices/xiaozhi-protocol.md`), quirks included: it fails the
//! test wherever the real firmware would abort, reboot-loop or give up
//! (a redirect, a non-numeric firmware version, an NVS key over 15 bytes, a
//! string of 4000 bytes or more, a framing version that is not a number).

use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

use crate::helpers::TestApp;

/// What the firmware sends and keeps.
#[derive(Debug, Clone)]
pub struct SimDevice {
    /// `Device-Id`, lower case with colons.
    pub mac: String,
    /// `Client-Id`.
    pub client_id: String,
    pub board_type: String,
    pub board_name: String,
    /// `application.version`.
    pub version: String,
    /// `Accept-Language`.
    pub language: String,
    /// Activation version 2: the serial number and the eFuse key.
    pub serial: Option<(String, [u8; 32])>,
}

/// What an OTA answer told the device.
#[derive(Debug, Clone)]
pub struct OtaAnswer {
    pub body: Value,
    pub websocket_url: String,
    pub token: String,
    pub protocol_version: i64,
    pub activation: Option<Activation>,
    /// `(version, url)` when the section is there.
    pub firmware: Option<(String, String)>,
}

/// The activation block of an OTA answer.
#[derive(Debug, Clone)]
pub struct Activation {
    pub code: String,
    pub challenge: String,
    pub message: String,
}

/// The firmware's version parse (`Ota::ParseVersion`): `None` where
/// `std::stoi` would throw and abort the device.
fn firmware_parses(version: &str) -> bool {
    version
        .split('.')
        .all(|seg| !seg.is_empty() && seg.len() <= 9 && seg.bytes().all(|b| b.is_ascii_digit()))
}

/// Checks a `websocket`/`mqtt` section as `Ota::CheckVersion` stores it in
/// NVS: every key at most 15 bytes, every string under 4000 bytes.
fn check_nvs_section(section: &Value, name: &str) {
    let map = section
        .as_object()
        .unwrap_or_else(|| panic!("`{name}` is not an object: {section}"));
    for (key, value) in map {
        assert!(
            key.len() <= 15,
            "NVS key `{key}` in `{name}` is over 15 bytes: the device aborts"
        );
        if let Some(s) = value.as_str() {
            assert!(
                s.len() < 4000,
                "`{name}.{key}` is 4000 bytes or more: the device aborts"
            );
        }
    }
}

impl SimDevice {
    /// A device with a random MAC on a common board, firmware 2.4.2.
    pub fn new() -> Self {
        let b = rand::random::<[u8; 5]>();
        Self {
            mac: format!(
                "02:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
                b[0], b[1], b[2], b[3], b[4]
            ),
            client_id: format!("{:032x}", rand::random::<u128>()),
            board_type: "bread-compact-wifi".into(),
            board_name: "bread-compact-wifi-128x64".into(),
            version: "2.4.2".into(),
            language: "zh-CN".into(),
            serial: None,
        }
    }

    /// The system information body (`Board::GetSystemInfoJson`).
    pub fn body(&self) -> Value {
        json!({
            "version": 2, "language": self.language, "flash_size": 16777216,
            "minimum_free_heap_size": "73420", "mac_address": self.mac, "uuid": self.client_id,
            "chip_model_name": "esp32s3",
            "chip_info": {"model": 9, "cores": 2, "revision": 2, "features": 18},
            "application": {"name": "xiaozhi", "version": self.version,
                            "compile_time": "Aug  6 2026T08:49:23Z", "idf_version": "v6.0",
                            "elf_sha256": "00".repeat(32)},
            "partition_table": [{"label": "nvs", "type": 1, "subtype": 2, "address": 36864, "size": 16384}],
            "ota": {"label": "ota_0"},
            "display": {"monochrome": false, "width": 240, "height": 240},
            "board": {"type": self.board_type, "name": self.board_name, "manufacturer": "lty-test",
                      "ssid": "home", "rssi": -52, "channel": 6, "ip": "192.168.1.23", "mac": self.mac}
        })
    }

    fn request(&self, app: &TestApp, path: &str) -> reqwest::RequestBuilder {
        let mut req = app
            .client
            .post(app.url(path))
            .header("Device-Id", &self.mac)
            .header("Client-Id", &self.client_id)
            .header(
                "User-Agent",
                format!("{}/{}", self.board_name, self.version),
            )
            .header("Accept-Language", &self.language);
        req = match &self.serial {
            Some((serial, _)) => req
                .header("Activation-Version", "2")
                .header("Serial-Number", serial),
            None => req.header("Activation-Version", "1"),
        };
        req
    }

    /// The raw OTA check at `path`.
    pub async fn ota_raw(&self, app: &TestApp, path: &str) -> reqwest::Response {
        self.request(app, path)
            .json(&self.body())
            .send()
            .await
            .expect("OTA check")
    }

    /// An OTA check as the firmware reads it; fails where the device would.
    pub async fn ota(&self, app: &TestApp, path: &str) -> OtaAnswer {
        let res = self.ota_raw(app, path).await;
        assert!(
            !res.status().is_redirection(),
            "the firmware follows no redirect"
        );
        assert_eq!(res.status(), 200, "a non-200 OTA answer is a failed check");
        assert!(
            res.headers().contains_key("content-length"),
            "the OTA answer needs Content-Length on every board"
        );
        let body: Value = res.json().await.expect("the OTA answer is JSON");
        assert!(body["server_time"]["timestamp"].is_number(), "{body}");
        assert!(body.get("mqtt").is_none(), "exactly one transport section");
        let ws = &body["websocket"];
        check_nvs_section(ws, "websocket");
        let url = ws["url"]
            .as_str()
            .expect("websocket.url is a string")
            .to_owned();
        let token = ws["token"]
            .as_str()
            .expect("websocket.token is a string")
            .to_owned();
        let version = ws["version"]
            .as_i64()
            .expect("websocket.version is a JSON number");
        assert!((1..=3).contains(&version), "framing {version}");
        let firmware = match (&body["firmware"]["version"], &body["firmware"]["url"]) {
            (Value::String(v), Value::String(u)) => {
                assert!(
                    firmware_parses(v),
                    "firmware.version {v:?} is not numeric: the device aborts at every boot"
                );
                Some((v.clone(), u.clone()))
            }
            _ => None,
        };
        let activation = body.get("activation").map(|a| Activation {
            code: a["code"].as_str().expect("activation.code").to_owned(),
            challenge: a["challenge"]
                .as_str()
                .expect("always send a challenge with the code")
                .to_owned(),
            message: a["message"].as_str().unwrap_or("").to_owned(),
        });
        OtaAnswer {
            body,
            websocket_url: url,
            token,
            protocol_version: version,
            activation,
            firmware,
        }
    }

    /// One activation poll with `challenge`; the status.
    pub async fn poll(&self, app: &TestApp, challenge: &str) -> u16 {
        let body = match &self.serial {
            Some((serial, key)) => {
                let mut mac = Hmac::<Sha256>::new_from_slice(key).unwrap();
                mac.update(challenge.as_bytes());
                json!({
                    "algorithm": "hmac-sha256", "serial_number": serial,
                    "challenge": challenge,
                    "hmac": hex::encode(mac.finalize().into_bytes()),
                })
            }
            None => json!({}),
        };
        let res = self
            .request(app, "/xiaozhi/ota/activate")
            .json(&body)
            .send()
            .await
            .expect("activate");
        assert!(!res.status().is_redirection(), "no redirect on /activate");
        res.status().as_u16()
    }
}
