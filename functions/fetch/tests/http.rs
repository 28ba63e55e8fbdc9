//! fetch against a real local HTTP server: good data, 429 with Retry-After, 500, a timeout and
//! malformed JSON; mapped events land on the (local) stream, bad bodies in quarantine.

use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_lambda_events::event::cloudwatch_events::CloudWatchEvent;
use sluice_fetch::http::{HttpApiSource, HttpPolicy};
use sluice_fetch::{ApiSource, Deps, FetchError, HandlerError, Mapper, Mapping, handle};
use sluice_infra::metrics::Metrics;
use sluice_infra::secret::Secret;
use sluice_infra::sink::LocalStreamLog;
use sluice_infra::store::{LocalDirStore, ObjectStore};
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const GOOD: &str = r#"{"data":[
  {"id":"a1","ts":"2026-11-24T05:00:00Z","ticker":"AAPL","p":190.5,"q":10},
  {"id":"a2","ts":1795496401,"ticker":"MSFT","p":420.25,"q":3},
  {"id":"a3","ts":1795496402000,"ticker":"TSLA","p":-5,"q":1}
]}"#;

fn mapper() -> Mapper {
    let mapping: Mapping = toml::from_str(include_str!("fixtures/trades-mapping.toml")).unwrap();
    Mapper::new(&mapping, sluice_core::stream::StreamSet::builtin()).unwrap()
}

fn policy() -> HttpPolicy {
    HttpPolicy {
        timeout: Duration::from_millis(500),
        max_attempts: 3,
        base_delay: Duration::from_millis(20),
        max_delay: Duration::from_secs(3),
        // wiremock serves plain HTTP on loopback.
        allow_http: true,
    }
}

fn source(server: &MockServer) -> HttpApiSource {
    let auth = Some(("X-Api-Key".to_string(), Secret::new("k3y".into())));
    HttpApiSource::new(format!("{}/quotes", server.uri()), auth, policy()).unwrap()
}

#[tokio::test]
async fn good_data_with_the_api_key_header() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/quotes"))
        .and(header("X-Api-Key", "k3y"))
        .respond_with(ResponseTemplate::new(200).set_body_string(GOOD))
        .expect(1)
        .mount(&server)
        .await;
    assert_eq!(source(&server).fetch().await.unwrap(), GOOD.as_bytes());
}

#[tokio::test]
async fn honours_retry_after_on_429_then_succeeds() {
    let server = MockServer::start().await;
    Mock::given(path("/quotes"))
        .respond_with(ResponseTemplate::new(429).insert_header("Retry-After", "1"))
        .up_to_n_times(1)
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(path("/quotes"))
        .respond_with(ResponseTemplate::new(200).set_body_string(GOOD))
        .expect(1)
        .mount(&server)
        .await;
    let started = Instant::now();
    assert_eq!(source(&server).fetch().await.unwrap(), GOOD.as_bytes());
    assert!(
        started.elapsed() >= Duration::from_millis(950),
        "waited {:?}, Retry-After said 1 s",
        started.elapsed()
    );
}

#[tokio::test]
async fn retries_a_500_but_not_a_401() {
    let server = MockServer::start().await;
    Mock::given(path("/quotes"))
        .respond_with(ResponseTemplate::new(500))
        .up_to_n_times(1)
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(path("/quotes"))
        .respond_with(ResponseTemplate::new(200).set_body_string(GOOD))
        .expect(1)
        .mount(&server)
        .await;
    assert!(source(&server).fetch().await.is_ok());

    let server = MockServer::start().await;
    Mock::given(path("/quotes"))
        .respond_with(ResponseTemplate::new(401).set_body_string("bad key"))
        .expect(1)
        .mount(&server)
        .await;
    match source(&server).fetch().await {
        Err(FetchError::Status { status: 401, body }) => assert_eq!(body, "bad key"),
        other => panic!("expected a non-retried 401, got {other:?}"),
    }
}

#[tokio::test]
async fn a_server_that_never_answers_in_time_is_given_up_on() {
    let server = MockServer::start().await;
    Mock::given(path("/quotes"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_string(GOOD)
                .set_delay(Duration::from_secs(3)),
        )
        .expect(3)
        .mount(&server)
        .await;
    match source(&server).fetch().await {
        Err(FetchError::GaveUp { attempts: 3, last }) => {
            assert!(last.contains("timed out"), "{last}")
        }
        other => panic!("expected GaveUp after timeouts, got {other:?}"),
    }
}

fn deps(server: &MockServer, dir: &std::path::Path) -> Deps {
    Deps {
        source: Arc::new(source(server)),
        sink: Arc::new(LocalStreamLog::open(dir.join("stream"), 1).unwrap()),
        store: Arc::new(LocalDirStore::new(dir.join("lake"))),
        mapper: mapper(),
        metrics: Arc::new(Metrics::default()),
    }
}

#[tokio::test]
async fn handler_sends_mapped_events_and_quarantines_bad_items() {
    let server = MockServer::start().await;
    Mock::given(path("/quotes"))
        .respond_with(ResponseTemplate::new(200).set_body_string(GOOD))
        .mount(&server)
        .await;
    let dir = tempfile::tempdir().unwrap();
    let response = handle(CloudWatchEvent::default(), &deps(&server, dir.path()))
        .await
        .unwrap();
    assert_eq!((response.events, response.rejected), (2, 1));
    let log = LocalStreamLog::open(dir.path().join("stream"), 1).unwrap();
    let records = log.read(0, 0, 10).unwrap();
    assert_eq!(records.len(), 2);
    assert!(records.iter().all(|r| {
        sluice_core::stream::Decoder::new(sluice_core::stream::StreamSet::builtin())
            .decode(&r.data, None)
            .is_ok()
    }));
    let store = LocalDirStore::new(dir.path().join("lake"));
    let kept = store
        .get(response.quarantined_at.as_deref().unwrap())
        .await
        .unwrap()
        .unwrap();
    let text = String::from_utf8(kept.body).unwrap();
    let line: serde_json::Value = serde_json::from_str(text.trim()).unwrap();
    assert_eq!(line["index"], 2);
    assert!(line["item"].as_str().unwrap().contains("\"a3\""), "{text}");
    assert!(
        line["reason"]
            .as_str()
            .unwrap()
            .contains("price (from /p = -5): field `price`: -5 must be greater than 0"),
        "{text}"
    );
}

#[tokio::test]
async fn malformed_json_is_kept_whole_and_the_invocation_fails() {
    let server = MockServer::start().await;
    let body = "{\"data\": [ {\"id\": oops";
    Mock::given(path("/quotes"))
        .respond_with(ResponseTemplate::new(200).set_body_string(body))
        .mount(&server)
        .await;
    let dir = tempfile::tempdir().unwrap();
    let err = handle(CloudWatchEvent::default(), &deps(&server, dir.path()))
        .await
        .unwrap_err();
    let HandlerError::Unmappable { kept_at, .. } = &err else {
        panic!("{err}")
    };
    let store = LocalDirStore::new(dir.path().join("lake"));
    assert_eq!(
        store.get(kept_at).await.unwrap().unwrap().body,
        body.as_bytes()
    );
    assert_eq!(
        LocalStreamLog::open(dir.path().join("stream"), 1)
            .unwrap()
            .latest_sequence(0),
        0
    );
}

#[tokio::test]
async fn the_key_never_follows_a_redirect_to_another_origin() {
    let api = MockServer::start().await;
    let elsewhere = MockServer::start().await;
    Mock::given(path("/quotes"))
        .respond_with(
            ResponseTemplate::new(302)
                .insert_header("Location", format!("{}/steal?x=1", elsewhere.uri())),
        )
        .mount(&api)
        .await;
    Mock::given(path("/steal"))
        .respond_with(ResponseTemplate::new(200).set_body_string(GOOD))
        .expect(0)
        .mount(&elsewhere)
        .await;
    let err = source(&api).fetch().await.unwrap_err();
    assert!(matches!(err, FetchError::Refused(_)), "{err}");
    assert!(err.to_string().contains("another origin"), "{err}");
    assert!(
        !err.to_string().contains("x=1"),
        "no query in messages: {err}"
    );
    elsewhere.verify().await;
}

#[tokio::test]
async fn a_redirect_within_the_origin_is_followed_with_the_key() {
    let server = MockServer::start().await;
    Mock::given(path("/quotes"))
        .respond_with(ResponseTemplate::new(301).insert_header("Location", "/v2/quotes"))
        .mount(&server)
        .await;
    Mock::given(path("/v2/quotes"))
        .and(header("X-Api-Key", "k3y"))
        .respond_with(ResponseTemplate::new(200).set_body_string(GOOD))
        .expect(1)
        .mount(&server)
        .await;
    assert_eq!(source(&server).fetch().await.unwrap(), GOOD.as_bytes());
}

#[test]
fn plain_http_needs_the_opt_in_and_urls_are_shown_without_their_query() {
    let key = || Some(("X-Api-Key".to_string(), Secret::new("k3y".into())));
    let strict = HttpPolicy::default();
    let err = HttpApiSource::new("http://api.example.com/quotes", key(), strict.clone())
        .err()
        .unwrap();
    assert!(err.to_string().contains("plain HTTP"), "{err}");
    let source = HttpApiSource::new(
        "https://user:pw@api.example.com/quotes?apikey=SECRET",
        key(),
        strict,
    )
    .unwrap();
    let shown = source.describe();
    assert_eq!(shown, "https://api.example.com/quotes");
}

/// A secret store whose value was rotated: refreshing reads the new key.
struct Rotated {
    refreshes: std::sync::atomic::AtomicUsize,
}

#[async_trait::async_trait]
impl sluice_infra::secret::SecretSource for Rotated {
    async fn get(&self, _: &str) -> Result<Secret, sluice_infra::secret::SecretError> {
        Ok(Secret::new("k3y".into()))
    }
    async fn refresh(&self, _: &str) -> Result<Secret, sluice_infra::secret::SecretError> {
        self.refreshes
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Ok(Secret::new("n3w".into()))
    }
}

#[tokio::test]
async fn a_401_re_reads_a_rotated_key_once() {
    let server = MockServer::start().await;
    Mock::given(path("/quotes"))
        .and(header("X-Api-Key", "k3y"))
        .respond_with(ResponseTemplate::new(401))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(path("/quotes"))
        .and(header("X-Api-Key", "n3w"))
        .respond_with(ResponseTemplate::new(200).set_body_string(GOOD))
        .expect(1)
        .mount(&server)
        .await;
    let store = Arc::new(Rotated {
        refreshes: Default::default(),
    });
    let rotating = source(&server).with_key_source(store.clone(), "api-key".into());
    assert_eq!(rotating.fetch().await.unwrap(), GOOD.as_bytes());
    assert_eq!(store.refreshes.load(std::sync::atomic::Ordering::SeqCst), 1);

    // A key that is still refused after the re-read is a 401, read again only once.
    let denied = MockServer::start().await;
    Mock::given(path("/quotes"))
        .respond_with(ResponseTemplate::new(401))
        .expect(2)
        .mount(&denied)
        .await;
    let store = Arc::new(Rotated {
        refreshes: Default::default(),
    });
    let err = source(&denied)
        .with_key_source(store.clone(), "api-key".into())
        .fetch()
        .await
        .unwrap_err();
    assert!(
        matches!(err, FetchError::Status { status: 401, .. }),
        "{err}"
    );
    assert_eq!(store.refreshes.load(std::sync::atomic::Ordering::SeqCst), 1);
}
