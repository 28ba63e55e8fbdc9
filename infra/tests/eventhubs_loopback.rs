//! The Event Hubs sink against a real AMQP 1.0 peer on loopback.
//!
//! No Event Hubs emulator runs here (the official one is a container), so the peer is built on
//! fe2o3-amqp's acceptor and answers as the service does for a producer:
//! - SASL ANONYMOUS;
//! - a `$cbs` put-token per link. The peer checks the token's HMAC-SHA256 signature the way Event
//!   Hubs does: the key signs `<url-encoded resource>\n<expiry>`. See "Authenticate access to
//!   Event Hubs resources using shared access signatures" in the Azure docs.
//! - a `$management` READ of the hub, giving its name, `created_at`, `partition_count` and
//!   `partition_ids`;
//! - partition links `amqps://<namespace>/<hub>/Partitions/<id>` attached with
//!   `max_message_size`. Each link takes batched messages (message format 0x80013700), whose
//!   data sections are the encoded events.
//!
//! The sink connects through `with_custom_endpoint("amqp://127.0.0.1:PORT")`, which switches the
//! client to plain TCP while the connection string's namespace stays the AMQP host name and the
//! token audience. The checks, on what arrives at the peer:
//! - every event, exactly once;
//! - each on the partition its key maps to;
//! - in send order within a key;
//! - batches under the link's size limit;
//! - a send that survives connections the hub drops mid-transfer.
#![cfg(feature = "eventhubs")]

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use fe2o3_amqp::acceptor::{
    ConnectionAcceptor, LinkAcceptor, LinkEndpoint, ListenerConnectionHandle,
    ListenerSessionHandle, SaslAnonymousMechanism, SessionAcceptor,
};
use fe2o3_amqp::types::messaging::message::__private::{Deserializable, Serializable};
use fe2o3_amqp::types::messaging::{AmqpValue, ApplicationProperties, Body, Message, Properties};
use fe2o3_amqp::types::primitives::{Array, OrderedMap, SimpleValue, Timestamp, Value};
use fe2o3_amqp::{Receiver, Sender};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use sluice_infra::secret::Secret;
use sluice_infra::sink::{EventHubsSink, EventSink, OutRecord, shard_for};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

/// The message format of an Event Hubs batch: each data section is one encoded event.
const BATCH_FORMAT: u32 = 0x8001_3700;
const NAMESPACE: &str = "loopback-ns.servicebus.windows.net";
const KEY_NAME: &str = "send";
const KEY: &str = "c2x1aWNlLWxvb3BiYWNrLWtleQ==";

/// One accepted transfer on a partition link.
#[derive(Debug)]
struct Batch {
    partition: String,
    format: Option<u32>,
    /// The transfer's encoded size (the message as the peer re-encodes it).
    encoded: usize,
    events: Vec<Vec<u8>>,
}

/// The loopback hub: what it answers and everything it saw.
struct Hub {
    name: String,
    partitions: Vec<String>,
    max_message_size: u64,
    /// Transfers still to be dropped: the hub closes every TCP connection it has instead of
    /// settling the transfer, as a restarting gateway or a network drop does.
    drop_transfers: AtomicUsize,
    /// A second handle on each accepted socket, to drop the connection from a link's task.
    sockets: Mutex<Vec<std::net::TcpStream>>,
    batches: Mutex<Vec<Batch>>,
    dropped: AtomicUsize,
    /// (audience, verdict) of each put-token.
    tokens: Mutex<Vec<(String, Result<(), String>)>>,
    management_reads: Mutex<Vec<String>>,
}

impl Hub {
    fn new(partitions: usize, max_message_size: u64, drop_transfers: usize) -> Arc<Self> {
        Arc::new(Self {
            name: "trades".to_string(),
            partitions: (0..partitions).map(|p| p.to_string()).collect(),
            max_message_size,
            drop_transfers: AtomicUsize::new(drop_transfers),
            sockets: Mutex::default(),
            batches: Mutex::default(),
            dropped: AtomicUsize::new(0),
            tokens: Mutex::default(),
            management_reads: Mutex::default(),
        })
    }

    fn connection_string(&self) -> Secret {
        Secret::new(format!(
            "Endpoint=sb://{NAMESPACE}/;SharedAccessKeyName={KEY_NAME};SharedAccessKey={KEY};EntityPath={}",
            self.name
        ))
    }

    /// Checks a SAS token the way Event Hubs does: key name, audience, expiry and signature.
    fn verify_token(&self, audience: &str, token: &str) -> Result<(), String> {
        let fields = token
            .strip_prefix("SharedAccessSignature ")
            .ok_or("not a SharedAccessSignature")?;
        let field = |name: &str| {
            fields
                .split('&')
                .find_map(|kv| kv.strip_prefix(&format!("{name}=")))
                .ok_or(format!("no {name}"))
        };
        let (sr, sig, se, skn) = (field("sr")?, field("sig")?, field("se")?, field("skn")?);
        if skn != KEY_NAME {
            return Err(format!("key name {skn}"));
        }
        // A token covers its resource and everything under it (the hub's token covers the
        // hub's `$management` node and partitions); the scheme does not matter.
        let path = |uri: &str| {
            let uri = uri.to_lowercase();
            let rest = uri.split_once("://").map_or(uri.as_str(), |(_, r)| r);
            rest.trim_end_matches('/').to_string()
        };
        let (resource, audience_path) = (path(&percent_decode(sr)), path(audience));
        if !(audience_path == resource || audience_path.starts_with(&format!("{resource}/"))) {
            return Err(format!("token for {resource}, link for {audience_path}"));
        }
        let expiry: i64 = se.parse().map_err(|_| format!("expiry {se}"))?;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        if expiry <= now {
            return Err("expired".into());
        }
        let mut mac = Hmac::<Sha256>::new_from_slice(KEY.as_bytes()).unwrap();
        mac.update(format!("{sr}\n{se}").as_bytes());
        let expected =
            base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
        if percent_decode(sig) != expected {
            return Err("bad signature".into());
        }
        Ok(())
    }

    fn events(&self) -> Vec<(String, Vec<u8>)> {
        let batches = self.batches.lock().unwrap();
        batches
            .iter()
            .flat_map(|b| b.events.iter().map(|e| (b.partition.clone(), e.clone())))
            .collect()
    }
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Ok(b) = u8::from_str_radix(&s[i + 1..i + 3], 16)
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8(out).unwrap()
}

/// Starts the peer on an ephemeral loopback port; returns the custom endpoint to connect to.
async fn start(hub: Arc<Hub>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        let acceptor = ConnectionAcceptor::builder()
            .container_id("sluice-loopback-hub")
            .sasl_acceptor(SaslAnonymousMechanism::new())
            .build();
        while let Ok((stream, _)) = listener.accept().await {
            let socket = stream.into_std().unwrap();
            hub.sockets
                .lock()
                .unwrap()
                .push(socket.try_clone().unwrap());
            let stream = tokio::net::TcpStream::from_std(socket).unwrap();
            if let Ok(connection) = acceptor.accept(stream).await {
                tokio::spawn(serve_connection(connection, hub.clone()));
            }
        }
    });
    format!("amqp://127.0.0.1:{port}")
}

async fn serve_connection(mut connection: ListenerConnectionHandle, hub: Arc<Hub>) {
    let sessions = SessionAcceptor::new();
    while let Ok(session) = sessions.accept(&mut connection).await {
        tokio::spawn(serve_session(session, hub.clone()));
    }
}

/// Reply channels of one session's request/response nodes (`$cbs`, `$management`): a request
/// arrives on the client's sender link to the node, its reply leaves on the client's receiver
/// link from the node, and either may attach first.
type Replies = HashMap<
    String,
    (
        mpsc::UnboundedSender<Message<AmqpValue<Value>>>,
        Option<mpsc::UnboundedReceiver<Message<AmqpValue<Value>>>>,
    ),
>;

async fn serve_session(mut session: ListenerSessionHandle, hub: Arc<Hub>) {
    let links = LinkAcceptor::builder()
        .max_message_size(hub.max_message_size)
        .build();
    let mut replies: Replies = HashMap::new();
    while let Ok(link) = links.accept(&mut session).await {
        match link {
            LinkEndpoint::Receiver(receiver) => {
                let address = receiver
                    .target()
                    .as_ref()
                    .and_then(|t| t.address.clone())
                    .unwrap_or_default();
                if address.starts_with('$') {
                    let entry = replies.entry(address.clone()).or_insert_with(|| {
                        let (tx, rx) = mpsc::unbounded_channel();
                        (tx, Some(rx))
                    });
                    tokio::spawn(serve_requests(
                        receiver,
                        address,
                        entry.0.clone(),
                        hub.clone(),
                    ));
                } else {
                    tokio::spawn(serve_partition(receiver, address, hub.clone()));
                }
            }
            LinkEndpoint::Sender(sender) => {
                let address = sender
                    .source()
                    .as_ref()
                    .and_then(|s| s.address.clone())
                    .unwrap_or_default();
                let entry = replies.entry(address).or_insert_with(|| {
                    let (tx, rx) = mpsc::unbounded_channel();
                    (tx, Some(rx))
                });
                if let Some(rx) = entry.1.take() {
                    tokio::spawn(serve_replies(sender, rx));
                }
            }
        }
    }
}

async fn serve_replies(
    mut sender: Sender,
    mut replies: mpsc::UnboundedReceiver<Message<AmqpValue<Value>>>,
) {
    while let Some(reply) = replies.recv().await {
        if sender.send(reply).await.is_err() {
            break;
        }
    }
}

fn text(properties: &Option<ApplicationProperties>, key: &str) -> Option<String> {
    match properties.as_ref()?.0.get(key)? {
        SimpleValue::String(s) => Some(s.clone()),
        SimpleValue::Symbol(s) => Some(s.0.clone()),
        _ => None,
    }
}

/// Answers `$cbs` put-token and `$management` READ requests.
async fn serve_requests(
    mut receiver: Receiver,
    node: String,
    replies: mpsc::UnboundedSender<Message<AmqpValue<Value>>>,
    hub: Arc<Hub>,
) {
    while let Ok(delivery) = receiver.recv::<Body<Value>>().await {
        if receiver.accept(&delivery).await.is_err() {
            break;
        }
        let request = delivery.into_message();
        let operation = text(&request.application_properties, "operation").unwrap_or_default();
        let name = text(&request.application_properties, "name").unwrap_or_default();
        let (status, description, body) = match (node.as_str(), operation.as_str()) {
            ("$cbs", "put-token") => {
                let token = match &request.body {
                    Body::Value(v) => match &v.0 {
                        Value::String(s) => s.clone(),
                        _ => String::new(),
                    },
                    _ => String::new(),
                };
                let verdict = hub.verify_token(&name, &token);
                let status = if verdict.is_ok() { 202 } else { 401 };
                let description = verdict.clone().err().unwrap_or_default();
                hub.tokens.lock().unwrap().push((name, verdict));
                (status, description, Value::Null)
            }
            ("$management", "READ") if name == hub.name => {
                hub.management_reads.lock().unwrap().push(name.clone());
                let mut attributes = OrderedMap::new();
                let mut put = |k: &str, v: Value| {
                    attributes.insert(Value::String(k.to_string()), v);
                };
                put("name", Value::String(hub.name.clone()));
                put("type", Value::String("com.microsoft:eventhub".into()));
                put(
                    "created_at",
                    Value::Timestamp(Timestamp::from_milliseconds(1_767_225_600_000)),
                );
                put("partition_count", Value::Int(hub.partitions.len() as i32));
                put(
                    "partition_ids",
                    Value::Array(Array::from(
                        hub.partitions
                            .iter()
                            .map(|p| Value::String(p.clone()))
                            .collect::<Vec<_>>(),
                    )),
                );
                (200, String::new(), Value::Map(attributes))
            }
            _ => (
                404,
                format!("{node} has no {operation} {name}"),
                Value::Null,
            ),
        };
        let reply_properties = Properties {
            correlation_id: request.properties.and_then(|p| p.message_id),
            ..Default::default()
        };
        let reply = Message::builder()
            .properties(reply_properties)
            .application_properties(
                ApplicationProperties::builder()
                    .insert("status-code", SimpleValue::Int(status))
                    .insert("status-description", SimpleValue::String(description))
                    .build(),
            )
            .value(body)
            .build();
        if replies.send(reply).is_err() {
            break;
        }
    }
}

/// Takes batched transfers on one partition link; drops the connections instead (the transfer
/// unsettled) while `hub.drop_transfers` says so.
async fn serve_partition(mut receiver: Receiver, address: String, hub: Arc<Hub>) {
    let partition = address
        .rsplit_once("/Partitions/")
        .map(|(_, p)| p.to_string())
        .unwrap_or_else(|| format!("<not a partition address: {address}>"));
    while let Ok(delivery) = receiver.recv::<Body<Value>>().await {
        let drop = hub
            .drop_transfers
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        if drop {
            hub.dropped.fetch_add(1, Ordering::SeqCst);
            for socket in hub.sockets.lock().unwrap().drain(..) {
                let _ = socket.shutdown(std::net::Shutdown::Both);
            }
            return;
        }
        let format = *delivery.message_format();
        let message = delivery.message().clone();
        let encoded = serde_amqp::to_vec(&Serializable(message.clone()))
            .unwrap()
            .len();
        let mut events = Vec::new();
        if let Body::Data(sections) = &message.body {
            for section in sections.iter() {
                let inner: Deserializable<Message<Body<Value>>> =
                    serde_amqp::from_slice(&section.0).expect("each data section is a message");
                match inner.0.body {
                    Body::Data(data) => {
                        events.push(data.iter().flat_map(|d| d.0.to_vec()).collect());
                    }
                    other => panic!("an event body that is not data: {other:?}"),
                }
            }
        }
        if receiver.accept(&delivery).await.is_err() {
            return;
        }
        hub.batches.lock().unwrap().push(Batch {
            partition: partition.clone(),
            format,
            encoded,
            events,
        });
    }
}

/// 3,000 events over 40 keys, each a JSON object naming its key and its send order.
fn records() -> Vec<OutRecord> {
    (0..3000)
        .map(|i| {
            let key = format!("sensor-{}", (i * 7) % 40);
            OutRecord {
                data: format!(
                    r#"{{"key":"{key}","seq":{i},"pad":"{}"}}"#,
                    "x".repeat(i % 200)
                )
                .into_bytes(),
                partition_key: key,
            }
        })
        .collect()
}

fn parse(event: &[u8]) -> (String, u64) {
    let v: serde_json::Value = serde_json::from_slice(event).unwrap();
    (
        v["key"].as_str().unwrap().to_string(),
        v["seq"].as_u64().unwrap(),
    )
}

/// Every event arrived once, on its key's partition, in send order within the key.
fn check_arrivals(hub: &Hub, sent: &[OutRecord]) {
    let arrived = hub.events();
    assert_eq!(arrived.len(), sent.len(), "every event exactly once");
    let mut seen = vec![false; sent.len()];
    let mut last_seq: BTreeMap<String, u64> = BTreeMap::new();
    for (partition, event) in &arrived {
        let (key, seq) = parse(event);
        let index = seq as usize;
        assert!(!seen[index], "event {seq} arrived twice");
        seen[index] = true;
        assert_eq!(event, &sent[index].data, "the bytes sent");
        assert_eq!(
            partition,
            &hub.partitions[shard_for(&key, hub.partitions.len())],
            "key {key} on its partition"
        );
        if let Some(prev) = last_seq.insert(key.clone(), seq) {
            assert!(prev < seq, "key {key}: {seq} arrived after {prev}");
        }
    }
}

#[tokio::test]
async fn every_event_arrives_once_on_its_partition_in_order_within_the_size_limit() {
    let hub = Hub::new(4, 64 * 1024, 0);
    let endpoint = start(hub.clone()).await;
    let sink = EventHubsSink::open(&hub.connection_string(), &hub.name, Some(&endpoint))
        .await
        .expect("the sink connects to the loopback hub");
    let sent = records();
    let report = sink.send(sent.clone()).await.expect("the send succeeds");

    check_arrivals(&hub, &sent);
    let batches = hub.batches.lock().unwrap();
    assert_eq!(report.calls, batches.len(), "one call per accepted batch");
    for b in batches.iter() {
        assert_eq!(b.format, Some(BATCH_FORMAT), "a batched message");
        assert!(
            b.encoded as u64 <= hub.max_message_size,
            "a {} byte batch over the {} byte link limit",
            b.encoded,
            hub.max_message_size
        );
    }
    let payload: usize = sent.iter().map(|r| r.data.len()).sum();
    assert!(
        batches.len() as u64 > payload as u64 / hub.max_message_size,
        "{payload} bytes need more than one batch per partition at this limit"
    );
    // Far from one batch per event: batches are filled up to the limit.
    assert!(batches.len() < sent.len() / 20, "{} batches", batches.len());
    let tokens = hub.tokens.lock().unwrap();
    assert!(!tokens.is_empty(), "the client authorised its links");
    for (audience, verdict) in tokens.iter() {
        assert_eq!(verdict, &Ok(()), "token for {audience}");
    }
    assert_eq!(*hub.management_reads.lock().unwrap(), vec!["trades"]);
}

#[tokio::test]
async fn a_send_survives_connections_dropped_mid_transfer() {
    let hub = Hub::new(2, 256 * 1024, 2);
    let endpoint = start(hub.clone()).await;
    let sink = EventHubsSink::open(&hub.connection_string(), &hub.name, Some(&endpoint))
        .await
        .unwrap()
        .with_send_timeout(Duration::from_secs(2));
    let sent = records();
    let report = tokio::time::timeout(Duration::from_secs(60), sink.send(sent.clone()))
        .await
        .expect("the send ends")
        .expect("the sink reconnects and resends");
    assert_eq!(
        hub.dropped.load(Ordering::SeqCst),
        2,
        "two connections dropped"
    );
    assert!(report.retried > 0, "{report:?}");
    check_arrivals(&hub, &sent);
}

#[tokio::test]
async fn a_wrong_key_is_refused_by_the_hub_and_reported_naming_it() {
    let hub = Hub::new(2, 256 * 1024, 0);
    let endpoint = start(hub.clone()).await;
    let wrong = Secret::new(format!(
        "Endpoint=sb://{NAMESPACE}/;SharedAccessKeyName={KEY_NAME};SharedAccessKey=d3Jvbmc=;EntityPath={}",
        hub.name
    ));
    let error = match EventHubsSink::open(&wrong, &hub.name, Some(&endpoint)).await {
        Ok(_) => panic!("a wrong key must not connect"),
        Err(e) => e.to_string(),
    };
    assert!(error.contains("event hub trades"), "{error}");
    let tokens = hub.tokens.lock().unwrap();
    assert!(
        tokens
            .iter()
            .any(|(_, v)| v == &Err("bad signature".to_string())),
        "{tokens:?}"
    );
    assert!(hub.batches.lock().unwrap().is_empty());
}
