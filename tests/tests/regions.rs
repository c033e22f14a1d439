//! Geoproximity routing across three regions on loopback, each a whole
//! Lobby with its own Redis: callers located by GeoIP (a small `.mmdb`
//! written here), by a trusted edge's geo headers, or by an override, land
//! in their region; a spoofed `X-Forwarded-For` from an untrusted peer is
//! ignored; bias moves a boundary; a region taken down is routed around and
//! comes back; the browser's flow (preflight, POST, `307`, and the
//! redirected preflight and POST with `Origin: null`) starts a session in
//! the region it was sent to; a proxying gateway answers with the target's
//! response.

use lobby_tests::{Lobby, LobbyOptions, Topology};
use reqwest::Method;
use serde_json::{json, Value};
use std::time::Duration;

const ORIGIN: &str = "https://app.example";
const BOSTON: &str = "198.51.100.7";
const PARIS: &str = "203.0.113.5";
const TOKYO: &str = "192.0.2.9";
const SECRET: &str = "test-region-secret-0123456789";

/// A City-layout GeoIP database: three test networks, three cities.
fn geoip_db(dir: &std::path::Path) -> std::path::PathBuf {
    #[derive(serde::Serialize)]
    struct Location {
        latitude: f64,
        longitude: f64,
    }
    #[derive(serde::Serialize)]
    struct City {
        location: Location,
    }
    let mut w = mmdb_writer::Writer::new("Lobby-Test-City");
    for (net, latitude, longitude) in [
        ("198.51.100.0/24", 42.36, -71.06),
        ("203.0.113.0/24", 48.85, 2.35),
        ("192.0.2.0/24", 35.68, 139.69),
    ] {
        w.insert(
            net.parse::<ipnet::IpNet>().expect("net"),
            &City {
                location: Location {
                    latitude,
                    longitude,
                },
            },
        )
        .expect("insert");
    }
    let path = dir.join("city.mmdb");
    std::fs::write(&path, w.to_bytes().expect("mmdb")).expect("write");
    path
}

struct World {
    regions: Vec<(String, Lobby)>,
    http: reqwest::Client,
    /// `LOBBY_REGIONS`, as every region has it.
    table: String,
}

impl World {
    fn lobby(&self, name: &str) -> &Lobby {
        &self
            .regions
            .iter()
            .find(|(n, _)| n == name)
            .expect("region")
            .1
    }
    /// The regions as region `name` sees them (what it signs with).
    fn region_list(&self, name: &str) -> lobby_kit::regions::RegionList {
        lobby_kit::regions::RegionList::from_settings(&lobby_kit::Settings::from_pairs([
            ("LOBBY_REGION", name),
            ("LOBBY_REGIONS", self.table.as_str()),
            ("LOBBY_REGION_SECRET", SECRET),
        ]))
        .expect("the test regions")
    }

    fn lobby_mut(&mut self, name: &str) -> &mut Lobby {
        &mut self
            .regions
            .iter_mut()
            .find(|(n, _)| n == name)
            .expect("region")
            .1
    }
}

/// How long a slot (and a hold at home) lasts unrenewed in these regions.
const LEASE_MS: u64 = 3_000;

/// `us` (bias +20, proxies its starts, trusts no proxy), `eu` and `ap`
/// (redirect their starts, one trusted proxy). The same account and agent
/// exist in each (a region's catalog is its own). The regions' doors trust
/// one CA, so each region's session service can call the others'.
async fn world() -> World {
    let dir = lobby_tests::scratch_dir("regions");
    let db = geoip_db(&dir);
    let certs =
        lobby_dev::certs::DevCerts::generate(&dir.join("certs"), lobby_dev::certs::SERVICES)
            .expect("certificates the regions share");
    let ports = lobby_tests::free_ports(6);
    let names = ["us", "eu", "ap"];
    let table = json!([
        {"name": "us", "url": format!("http://127.0.0.1:{}", ports[0]), "latitude": 39.0, "longitude": -77.5, "bias": 20,
         "admission_url": format!("https://127.0.0.1:{}", ports[3])},
        {"name": "eu", "url": format!("http://127.0.0.1:{}", ports[1]), "latitude": 53.3, "longitude": -6.3,
         "admission_url": format!("https://127.0.0.1:{}", ports[4])},
        {"name": "ap", "url": format!("http://127.0.0.1:{}", ports[2]), "latitude": 1.35, "longitude": 103.8,
         "admission_url": format!("https://127.0.0.1:{}", ports[5])},
    ]);
    let mut regions = Vec::new();
    for (i, name) in names.iter().enumerate() {
        let (hops, action) = if *name == "us" {
            ("0", "proxy")
        } else {
            ("1", "redirect")
        };
        let env = [
            ("LOBBY_REGION", name.to_string()),
            ("LOBBY_REGIONS", table.to_string()),
            ("LOBBY_GEOIP_DB", db.display().to_string()),
            ("LOBBY_GEO_LATITUDE_HEADER", "x-edge-latitude".into()),
            ("LOBBY_GEO_LONGITUDE_HEADER", "x-edge-longitude".into()),
            ("LOBBY_TRUSTED_PROXY_HOPS", hops.into()),
            ("LOBBY_REGION_START_ACTION", action.into()),
            ("LOBBY_REGION_PROBE_INTERVAL_MS", "150".into()),
            ("LOBBY_REGION_PROBE_TIMEOUT_MS", "300".into()),
            ("LOBBY_REGION_DOWN_AFTER", "2".into()),
            ("LOBBY_REGION_UP_AFTER", "2".into()),
            ("LOBBY_REGION_SECRET", SECRET.into()),
            (
                "LOBBY_SESSION_REGIONS_LISTEN",
                format!("127.0.0.1:{}", ports[3 + i]),
            ),
            ("LOBBY_SESSION_LEASE_MS", LEASE_MS.to_string()),
            ("LOBBY_SWEEP_INTERVAL_MS", "500".into()),
            ("LOBBY_REGION_CALL_TIMEOUT_MS", "2000".into()),
        ];
        let lobby = Lobby::start(LobbyOptions {
            gateway_port: Some(ports[i]),
            worker: false,
            extra_env: env.into_iter().map(|(k, v)| (k.to_owned(), v)).collect(),
            certs: Some(certs.clone()),
            ..Default::default()
        })
        .await;
        let (s, b) = lobby
            .admin_json(
                Method::POST,
                "/accounts",
                Some(json!({"id": "acct_geo", "name": "geo", "max_concurrency": 50})),
            )
            .await;
        assert_eq!(s, 201, "{b}");
        let (s, b) = lobby
            .admin_json(
                Method::POST,
                "/agents",
                Some(json!({"id": "geo-agent", "account_id": "acct_geo", "status": "published", "allowed_hostnames": [ORIGIN]})),
            )
            .await;
        assert_eq!(s, 201, "{b}");
        regions.push((name.to_string(), lobby));
    }
    let w = World {
        regions,
        http: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(10))
            .build()
            .expect("client"),
        table: table.to_string(),
    };
    // Each started while the later ones were not up yet: wait until every
    // gateway's probes see every region healthy.
    for (name, lobby) in &w.regions {
        let mut listed = Value::Null;
        for _ in 0..100 {
            listed = json_of(w.http.get(format!("{}/v1/regions", lobby.gateway())))
                .await
                .2;
            let all = listed["regions"]
                .as_array()
                .is_some_and(|r| r.iter().all(|r| r["healthy"] == true));
            if all {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(listed["region"], name.as_str());
        assert!(
            listed["regions"]
                .as_array()
                .is_some_and(|r| r.len() == 3 && r.iter().all(|r| r["healthy"] == true)),
            "{name}: {listed}"
        );
    }
    w
}

/// Sends `req`; its status, headers and JSON body (`null` when not JSON).
async fn json_of(req: reqwest::RequestBuilder) -> (u16, reqwest::header::HeaderMap, Value) {
    let r = req.send().await.expect("request");
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    let text = r.text().await.expect("body");
    (
        status,
        headers,
        serde_json::from_str(&text).unwrap_or(Value::Null),
    )
}

async fn nearest(w: &World, at: &str, headers: &[(&str, &str)], query: &str) -> Value {
    let mut req = w.http.get(format!(
        "{}/v1/regions/nearest{query}",
        w.lobby(at).gateway()
    ));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let (s, _, b) = json_of(req).await;
    assert_eq!(s, 200, "{b}");
    b
}

fn connect(
    w: &World,
    url: &str,
    origin: Option<&str>,
    xff: Option<&str>,
) -> reqwest::RequestBuilder {
    let mut req = w.http.post(url).json(&json!({ "agent_id": "geo-agent" }));
    if let Some(o) = origin {
        req = req.header("origin", o);
    }
    if let Some(x) = xff {
        req = req.header("x-forwarded-for", x);
    }
    req
}

#[tokio::test]
async fn callers_land_in_their_nearest_healthy_region() {
    let mut w = world().await;
    let eu = w.lobby("eu").gateway().to_owned();

    // GeoIP, through one trusted proxy: the rightmost entry is the client,
    // whatever the client wrote to its left.
    for (ip, want) in [(BOSTON, "us"), (PARIS, "eu"), (TOKYO, "ap")] {
        let b = nearest(
            &w,
            "eu",
            &[("x-forwarded-for", &format!("10.9.9.9, {ip}"))],
            "",
        )
        .await;
        assert_eq!(
            (b["region"].as_str(), b["located_by"].as_str()),
            (Some(want), Some("geoip")),
            "{ip}: {b}"
        );
    }
    let spoofed = nearest(
        &w,
        "eu",
        &[("x-forwarded-for", &format!("{TOKYO}, {PARIS}"))],
        "",
    )
    .await;
    assert_eq!(
        spoofed["region"], "eu",
        "the spoofed left entry is never read: {spoofed}"
    );
    // A region's proxying gateway vouches for the client's address; eu
    // believes it only when it is signed by another region, for eu.
    let vouched = w
        .region_list("us")
        .vouch_for_client("eu", TOKYO.parse().expect("ip"));
    let b = nearest(&w, "eu", &[("x-lobby-proxied-client", &vouched)], "").await;
    assert_eq!(
        (b["region"].as_str(), b["located_by"].as_str()),
        (Some("ap"), Some("geoip")),
        "{b}"
    );
    let for_ap = w
        .region_list("us")
        .vouch_for_client("ap", TOKYO.parse().expect("ip"));
    let forged = vouched.replace(TOKYO, BOSTON);
    for value in [for_ap, forged] {
        let b = nearest(&w, "eu", &[("x-lobby-proxied-client", &value)], "").await;
        assert_eq!(b["located_by"], "unknown", "{value}: {b}");
    }
    // us trusts no proxy: X-Forwarded-For from its peer is ignored.
    let b = nearest(&w, "us", &[("x-forwarded-for", TOKYO)], "").await;
    assert_eq!(
        (b["region"].as_str(), b["located_by"].as_str()),
        (Some("us"), Some("unknown")),
        "{b}"
    );
    // The trusted edge's headers, and the override (validated).
    let b = nearest(
        &w,
        "us",
        &[("x-edge-latitude", "35.68"), ("x-edge-longitude", "139.69")],
        "",
    )
    .await;
    assert_eq!(
        (b["region"].as_str(), b["located_by"].as_str()),
        (Some("ap"), Some("edge_headers")),
        "{b}"
    );
    let b = nearest(&w, "ap", &[], "?region=eu").await;
    assert_eq!(
        (b["region"].as_str(), b["located_by"].as_str()),
        (Some("eu"), Some("override"))
    );
    let b = nearest(&w, "ap", &[("x-lobby-region", "us")], "").await;
    assert_eq!(b["region"], "us");
    let r = w
        .http
        .get(format!("{eu}/v1/regions/nearest?region=mars"))
        .send()
        .await
        .expect("get");
    assert_eq!(r.status(), 400);

    // Bias: us has +20. Mid-Atlantic (45, −40) is nearer Dublin (2,600 km)
    // than Virginia (3,100 km), but 3,100 × 0.8 wins; (48, −30) stays eu.
    let at = |lat: &str, lon: &str| {
        [
            ("x-edge-latitude", lat.to_owned()),
            ("x-edge-longitude", lon.to_owned()),
        ]
    };
    let b = nearest(
        &w,
        "eu",
        &at("45", "-40").each_ref().map(|(k, v)| (*k, v.as_str())),
        "",
    )
    .await;
    assert_eq!(b["region"], "us", "bias pulled the boundary east: {b}");
    let b = nearest(
        &w,
        "eu",
        &at("48", "-30").each_ref().map(|(k, v)| (*k, v.as_str())),
        "",
    )
    .await;
    assert_eq!(b["region"], "eu", "{b}");

    // A start from Paris at eu is served there; from Boston it is sent to
    // us with 307, and us serves the same request.
    let (s, h, b) = json_of(connect(
        &w,
        &format!("{eu}/v1/public/agents/connect"),
        Some(ORIGIN),
        Some(PARIS),
    ))
    .await;
    assert_eq!(
        (s, h["x-lobby-region"].to_str().ok()),
        (200, Some("eu")),
        "{b}"
    );
    let (s, h, _) = json_of(connect(
        &w,
        &format!("{eu}/v1/public/agents/connect"),
        Some(ORIGIN),
        Some(BOSTON),
    ))
    .await;
    assert_eq!(s, 307);
    assert_eq!(h["x-lobby-region-target"], "us");
    let location = h["location"].to_str().expect("location").to_owned();
    assert!(
        location.starts_with(w.lobby("us").gateway()) && location.contains("region=us"),
        "{location}"
    );
    let (s, h, b) = json_of(connect(&w, &location, Some(ORIGIN), None)).await;
    assert_eq!(
        (s, h["x-lobby-region"].to_str().ok()),
        (200, Some("us")),
        "{b}"
    );
    assert_eq!(
        w.lobby("us").active_sessions("acct_geo").await,
        1,
        "the session is us's"
    );

    // us proxies: a start there from Paris (by the edge's headers, as us
    // trusts no proxy) is answered by eu.
    let us = w.lobby("us").gateway().to_owned();
    let (s, h, b) = json_of(
        connect(
            &w,
            &format!("{us}/v1/public/agents/connect"),
            Some(ORIGIN),
            None,
        )
        .header("x-edge-latitude", "48.85")
        .header("x-edge-longitude", "2.35"),
    )
    .await;
    assert_eq!(
        (s, h["x-lobby-region"].to_str().ok()),
        (200, Some("eu")),
        "{b}"
    );
    assert_eq!(w.lobby("eu").active_sessions("acct_geo").await, 2);

    // ap goes down: Tokyo is routed to the next nearest healthy region;
    // then ap comes back.
    let ap_process = match w.lobby("ap").topology {
        Topology::Split => "gateway-0",
        Topology::CoLocated => "server-0",
    };
    w.lobby_mut("ap").kill(ap_process);
    let tokyo = [("x-forwarded-for", TOKYO)];
    let mut routed_around = Value::Null;
    for _ in 0..50 {
        routed_around = nearest(&w, "eu", &tokyo, "").await;
        if routed_around["region"] != "ap" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Tokyo is 9,600 km from Dublin and 10,900 from Virginia, which us's
    // bias of +20 counts as 8,700: us is its next region.
    assert_eq!(
        routed_around["region"], "us",
        "Tokyo's next nearest healthy region: {routed_around}"
    );
    let (_, _, listed) = json_of(w.http.get(format!("{eu}/v1/regions"))).await;
    let ap = listed["regions"]
        .as_array()
        .expect("regions")
        .iter()
        .find(|r| r["name"] == "ap")
        .cloned();
    assert_eq!(
        ap.map(|r| r["healthy"].clone()),
        Some(json!(false)),
        "{listed}"
    );
    w.lobby_mut("ap").restart(ap_process).await;
    let mut back = Value::Null;
    for _ in 0..50 {
        back = nearest(&w, "eu", &tokyo, "").await;
        if back["region"] == "ap" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(back["region"], "ap", "ap is back: {back}");
}

/// What a browser does: preflight, POST, follow the 307 to another origin
/// (now with `Origin: null`, the Fetch standard's tainted origin), preflight
/// there, POST there. The redirect's signed origin grant lets the target
/// check the real origin and answer the browser's `null`.
#[tokio::test]
async fn the_browser_flow_follows_the_redirect_with_a_null_origin() {
    let w = world().await;
    let eu = w.lobby("eu").gateway().to_owned();
    let url = format!("{eu}/v1/public/agents/connect");
    let preflight = |u: &str, origin: &str| {
        w.http
            .request(Method::OPTIONS, u)
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "content-type")
            .header("x-forwarded-for", BOSTON)
    };
    let r = preflight(&url, ORIGIN).send().await.expect("preflight");
    assert!(r.status().is_success(), "{}", r.status());
    assert_eq!(r.headers()["access-control-allow-origin"], ORIGIN);

    let (s, h, _) = json_of(connect(&w, &url, Some(ORIGIN), Some(BOSTON))).await;
    assert_eq!(s, 307);
    assert_eq!(
        h["access-control-allow-origin"], ORIGIN,
        "the browser may follow it"
    );
    let location = h["location"].to_str().expect("location").to_owned();

    let r = preflight(&location, "null")
        .send()
        .await
        .expect("preflight there");
    assert!(r.status().is_success(), "{}", r.status());
    assert_eq!(r.headers()["access-control-allow-origin"], "null");
    let (s, h, b) = json_of(connect(&w, &location, Some("null"), None)).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(h["access-control-allow-origin"], "null");
    assert_eq!(h["x-lobby-region"], "us");
    assert!(b["session_id"].is_string(), "{b}");

    // Without the grant, with one altered, or with one made for another
    // region, `null` is just `null`.
    let bare = location.split('?').next().expect("path").to_owned() + "?region=us";
    let forged = location.replace("app.example", "evil.example");
    let elsewhere = location
        .replace(w.lobby("us").gateway(), &eu)
        .replace("region=us", "region=eu");
    for attempt in [bare, forged, elsewhere] {
        let (s, _, b) = json_of(connect(&w, &attempt, Some("null"), None)).await;
        assert_eq!(
            (s, b["error_code"].as_str()),
            (403, Some("auth_failed")),
            "{attempt}: {b}"
        );
    }
}

/// An account homed in `us` with `limit` slots, and its agent, in every
/// region's catalog.
async fn homed_in_us(w: &World, account: &str, limit: u32) {
    for (name, lobby) in &w.regions {
        let (s, b) = lobby
            .admin_json(
                Method::POST,
                "/accounts",
                Some(json!({"id": account, "name": "global", "max_concurrency": limit, "home_region": "us"})),
            )
            .await;
        assert_eq!(
            (s, b["home_region"].as_str()),
            (201, Some("us")),
            "{name}: {b}"
        );
        let (s, b) = lobby
            .admin_json(
                Method::POST,
                "/agents",
                Some(json!({"id": format!("{account}-agent"), "account_id": account, "status": "published", "allowed_hostnames": [ORIGIN]})),
            )
            .await;
        assert_eq!(s, 201, "{name}: {b}");
    }
}

/// A start of `account`'s agent served by `region` itself (the override
/// keeps routing out of it): its status and body.
fn start_in(
    w: &World,
    region: &str,
    account: &str,
) -> impl std::future::Future<Output = (u16, Value)> {
    let req = w
        .http
        .post(format!(
            "{}/v1/public/agents/connect?region={region}",
            w.lobby(region).gateway()
        ))
        .header("origin", ORIGIN)
        .json(&json!({ "agent_id": format!("{account}-agent") }));
    async move {
        match req.send().await {
            Ok(r) => {
                let status = r.status().as_u16();
                (status, r.json().await.unwrap_or(Value::Null))
            }
            // The region was killed under it.
            Err(_) => (0, Value::Null),
        }
    }
}

/// How many records of `account` `region` keeps.
async fn records_of(w: &World, region: &str, account: &str) -> usize {
    w.lobby(region)
        .records(account, "")
        .await
        .as_array()
        .map_or(0, Vec::len)
}

fn count(answers: &[(u16, Value)], status: u16) -> usize {
    answers.iter().filter(|(s, _)| *s == status).count()
}

#[tokio::test]
async fn an_accounts_limit_holds_across_regions() {
    let w = world().await;
    homed_in_us(&w, "acct_global", 7).await;
    // 200 starts at once, spread over the three regions, each served
    // where it arrived: the account's home admits exactly its limit.
    let starts = (0..200).map(|i| start_in(&w, ["us", "eu", "ap"][i % 3], "acct_global"));
    let answers = futures::future::join_all(starts).await;
    assert_eq!(
        (count(&answers, 200), count(&answers, 429)),
        (7, 193),
        "{:?}",
        answers.iter().map(|a| a.0).collect::<Vec<_>>()
    );
    let refused = answers.iter().find(|(s, _)| *s == 429).expect("a refusal");
    assert_eq!(
        refused.1["error_code"], "concurrency_limit",
        "{}",
        refused.1
    );
    // Each region holds its own sessions; home counts them all.
    let mut here = 0;
    for name in ["us", "eu", "ap"] {
        here += records_of(&w, name, "acct_global").await;
    }
    assert_eq!(
        here, 7,
        "every admitted session has its record where it started"
    );
    assert_eq!(w.lobby("us").active_sessions("acct_global").await, 7);

    // Renewed across sweeps, the holds stay: still full after two leases.
    tokio::time::sleep(Duration::from_millis(2 * LEASE_MS)).await;
    let (s, b) = start_in(&w, "ap", "acct_global").await;
    assert_eq!(s, 429, "{b}");
    assert_eq!(w.lobby("us").active_sessions("acct_global").await, 7);

    // A session ended in another region frees its slot at home at once.
    // Which regions won the race is up to the scheduler; when home took
    // all seven, one of them makes room for a start in eu first.
    let admitted: Vec<String> = answers
        .iter()
        .filter(|(s, _)| *s == 200)
        .filter_map(|(_, b)| b["session_id"].as_str().map(str::to_owned))
        .collect();
    let mut outside = None;
    for id in &admitted {
        for name in ["eu", "ap"] {
            let r = w
                .lobby(name)
                .admin(Method::GET, &format!("/sessions/{id}"))
                .send()
                .await
                .expect("show");
            if r.status() == 200 {
                outside = Some((name, id.clone()));
            }
        }
    }
    let (region, id) = match outside {
        Some(found) => found,
        None => {
            w.lobby("us").end_session(&admitted[0]).await;
            let (s, b) = start_in(&w, "eu", "acct_global").await;
            assert_eq!(s, 200, "{b}");
            (
                "eu",
                b["session_id"].as_str().expect("session_id").to_owned(),
            )
        }
    };
    assert_eq!(w.lobby("us").active_sessions("acct_global").await, 7);
    w.lobby(region).end_session(&id).await;
    assert_eq!(w.lobby("us").active_sessions("acct_global").await, 6);
    let (s, b) = start_in(&w, "eu", "acct_global").await;
    assert_eq!(s, 200, "{b}");
    let (s, b) = start_in(&w, "ap", "acct_global").await;
    assert_eq!(s, 429, "{b}");
}

#[tokio::test]
async fn a_region_killed_mid_start_leaks_no_slot_and_a_dead_home_takes_nothing() {
    let mut w = world().await;
    homed_in_us(&w, "acct_killed", 5).await;
    for _ in 0..2 {
        let (s, b) = start_in(&w, "us", "acct_killed").await;
        assert_eq!(s, 200, "{b}");
    }
    // eu is killed while 40 starts are in flight there: some were held at
    // home and never answered.
    let storm: Vec<_> = (0..40).map(|_| start_in(&w, "eu", "acct_killed")).collect();
    let storm = tokio::spawn(futures::future::join_all(storm));
    // Killed as soon as home holds a slot for eu, with the rest in flight.
    let mut held_for_eu = 0;
    for _ in 0..400 {
        held_for_eu = w.lobby("us").active_sessions("acct_killed").await - 2;
        if held_for_eu > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    w.lobby_mut("eu").crash_all();
    assert!(held_for_eu > 0, "eu took a hold at home before it died");
    let answers = storm.await.expect("storm");
    assert!(count(&answers, 200) <= 3, "never past the limit");
    // Within a lease (and a sweep), home has taken back every hold of eu.
    tokio::time::sleep(Duration::from_millis(LEASE_MS + 1_000)).await;
    let starts = (0..20).map(|_| start_in(&w, "ap", "acct_killed"));
    let answers = futures::future::join_all(starts).await;
    assert_eq!(
        (count(&answers, 200), count(&answers, 429)),
        (3, 17),
        "all but us's two slots are free again"
    );
    assert_eq!(w.lobby("us").active_sessions("acct_killed").await, 5);

    // The home itself is down: a start elsewhere is refused as temporarily
    // unavailable, and takes nothing there.
    w.lobby_mut("eu").restart_all().await;
    let before = records_of(&w, "eu", "acct_killed").await;
    w.lobby_mut("us").crash_all();
    let (s, b) = start_in(&w, "eu", "acct_killed").await;
    assert_eq!(
        (s, b["error_code"].as_str()),
        (503, Some("store_unavailable")),
        "{b}"
    );
    assert_eq!(w.lobby("eu").active_sessions("acct_killed").await, 0);
    assert_eq!(
        records_of(&w, "eu", "acct_killed").await,
        before,
        "no record written for the refusal"
    );
    // Home stays down past a lease. ap's three sessions run on (ap renews
    // their leases itself); us's own two lapse with their region. Back up,
    // home counts ap's three again: two slots are free, not five.
    tokio::time::sleep(Duration::from_millis(LEASE_MS + 500)).await;
    assert_eq!(w.lobby("ap").active_sessions("acct_killed").await, 3);
    w.lobby_mut("us").restart_all().await;
    tokio::time::sleep(Duration::from_millis(LEASE_MS)).await;
    assert_eq!(w.lobby("us").active_sessions("acct_killed").await, 3);
    let starts = (0..4).map(|_| start_in(&w, "eu", "acct_killed"));
    let answers = futures::future::join_all(starts).await;
    assert_eq!((count(&answers, 200), count(&answers, 429)), (2, 2));
}

/// The regions' door answers a call only with a token signed for that very
/// call: none, another region's secret, or a token made for another call
/// or another session is refused, so a token seen in passing releases or
/// renews nothing else.
#[tokio::test]
async fn the_regions_door_takes_a_token_for_its_own_call_only() {
    use lobby_proto::regions::{home_admission_client::HomeAdmissionClient, ReleaseHoldRequest};
    let w = world().await;
    let table: Value = serde_json::from_str(&w.table).expect("the regions");
    let door = table
        .as_array()
        .expect("regions")
        .iter()
        .find(|r| r["name"] == "us")
        .and_then(|r| r["admission_url"].as_str())
        .expect("us's door")
        .to_owned();
    let mut client = HomeAdmissionClient::new(w.lobby("us").grpc_channel(&door));
    let release = |session: &str| ReleaseHoldRequest {
        session_id: session.into(),
        account_id: "acct_geo".into(),
        agent_id: "geo-agent".into(),
        failed: true,
        ran_seconds: 0,
    };
    let eu = w.region_list("eu");
    let with_token = |token: Option<String>, session: &str| {
        let mut req = tonic::Request::new(release(session));
        if let Some(t) = token {
            req.metadata_mut().insert(
                lobby_kit::regions::CALL_TOKEN_HEADER,
                t.parse().expect("ascii"),
            );
        }
        req
    };
    let refused = [
        ("no token", with_token(None, "s-1")),
        (
            "another session's",
            with_token(Some(eu.call_token("us", "release:acct_geo:s-2", 60)), "s-1"),
        ),
        (
            "another call's",
            with_token(Some(eu.call_token("us", "hold:acct_geo:s-1", 60)), "s-1"),
        ),
        (
            "made for another region",
            with_token(Some(eu.call_token("ap", "release:acct_geo:s-1", 60)), "s-1"),
        ),
    ];
    for (what, req) in refused {
        let status = client.release_hold(req).await.expect_err(what);
        assert_eq!(status.code(), tonic::Code::Unauthenticated, "{what}");
    }
    let good = with_token(Some(eu.call_token("us", "release:acct_geo:s-1", 60)), "s-1");
    let answer = client.release_hold(good).await.expect("its own call");
    assert!(!answer.into_inner().released, "nothing was held");
}
