//! The fault shim: a small HTTP/1.1 proxy between `elb` and moto_server.
//!
//! moto models EC2's resources but not its weather: eventual consistency, throttling, slow
//! state changes, in-use security groups, lost responses, ClientToken idempotency. The shim adds
//! them on request, per test, and counts every fault it fires so that a test whose fault never
//! fired fails instead of passing vacuously. It also stamps every request with the test's own
//! `x-moto-account-id`, so parallel tests share one moto without seeing each other, and keeps a
//! log of the EC2 actions it saw, so tests can count calls. It can also give instances the
//! addresses of test hosts ([`Shim::map_addresses`]), so `elb` reaches a moto instance over SSH.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONNECTION, CONTENT_LENGTH, TRANSFER_ENCODING};
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use super::http::{runtime, send};

/// One EC2 request as the shim saw it, faulted or not.
#[derive(Debug, Clone)]
pub struct Call {
    pub action: String,
    /// The region of the request's SigV4 credential scope.
    pub region: String,
    /// The service of the credential scope: `ec2`, `elasticloadbalancing`.
    pub service: String,
    pub client_token: Option<String>,
}

/// An EC2 error the shim answers instead of forwarding.
#[derive(Debug, Clone)]
pub struct Fault {
    /// Only requests for this action; `None` for any action.
    action: Option<String>,
    /// Dormant until a request for this action has succeeded.
    after: Option<String>,
    times: usize,
    status: u16,
    code: String,
}

impl Fault {
    /// Answer every `action` request with HTTP `status` and EC2 error `code`.
    pub fn error(action: &str, status: u16, code: &str) -> Self {
        Self {
            action: Some(action.into()),
            after: None,
            times: usize::MAX,
            status,
            code: code.into(),
        }
    }

    /// The next `burst` requests, whatever their action, are throttled (503 RequestLimitExceeded).
    pub fn throttling(burst: usize) -> Self {
        Self {
            action: None,
            after: None,
            times: burst,
            status: 503,
            code: "RequestLimitExceeded".into(),
        }
    }

    /// Fire only on the first `n` matching requests.
    pub fn times(mut self, n: usize) -> Self {
        self.times = n;
        self
    }

    /// Stay dormant until a request for `action` has succeeded (e.g. eventual consistency after
    /// `RunInstances`).
    pub fn after(mut self, action: &str) -> Self {
        self.after = Some(action.into());
        self
    }
}

/// Handle on an installed [`Fault`], to ask how often it fired.
#[derive(Debug, Clone, Copy)]
pub struct FaultId(usize);

struct Installed {
    fault: Fault,
    armed: bool,
    hits: usize,
}

/// Everything a test configures or reads; the shim's task holds it only between awaits.
#[derive(Default)]
struct State {
    log: Vec<Call>,
    faults: Vec<Installed>,
    /// DescribeInstances answers still to rewrite from running to pending, and how many were.
    pending_left: usize,
    pending_hits: usize,
    /// RunInstances answers still to lose after moto executed them, and how many were.
    drops_left: usize,
    drop_hits: usize,
    /// ClientToken → the RunInstances answer moto gave for it (real EC2's idempotency).
    run_answers: HashMap<String, Bytes>,
    replays: usize,
    /// What DescribeTargetHealth answers show instead of moto's always-healthy targets.
    target_health: TargetHealthPlan,
    target_health_hits: usize,
    /// Addresses still to give to instances not seen yet, and the ones given (id -> address).
    address_pool: Vec<String>,
    addresses: HashMap<String, String>,
}

/// moto reports every registered target `healthy` at once; real ALBs start them `initial` and
/// fail some. The first `initial_answers` DescribeTargetHealth answers show every target
/// `initial`; from then on the targets in `unhealthy` are `unhealthy` with a reason.
#[derive(Debug, Default)]
struct TargetHealthPlan {
    initial_answers: usize,
    unhealthy: Vec<String>,
}

/// A running shim for one test, on its own loopback port, stopped when dropped.
pub struct Shim {
    port: u16,
    state: Arc<Mutex<State>>,
    task: JoinHandle<()>,
}

impl Shim {
    /// Starts a shim that forwards to moto on `moto_port` as moto account `account`.
    pub fn start(moto_port: u16, account: &str) -> Self {
        let listener =
            std::net::TcpListener::bind("127.0.0.1:0").expect("bind the shim on loopback");
        listener
            .set_nonblocking(true)
            .expect("non-blocking shim listener");
        let port = listener.local_addr().expect("shim address").port();
        let state = Arc::new(Mutex::new(State::default()));
        let upstream = Upstream {
            moto_port,
            account: HeaderValue::from_str(account).expect("an account id is a valid header value"),
            state: state.clone(),
        };
        let task = runtime().spawn(async move {
            let listener = TcpListener::from_std(listener).expect("register the shim listener");
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let upstream = upstream.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |request| {
                        let upstream = upstream.clone();
                        async move { upstream.handle(request).await }
                    });
                    // An error here is either a dropped response (on purpose) or the client
                    // going away; neither concerns the shim.
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Self { port, state, task }
    }

    /// The loopback port the shim listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The endpoint to hand to `elb --endpoint-url`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Installs `fault`; faults are tried in installation order, the first that matches fires.
    pub fn inject(&self, fault: Fault) -> FaultId {
        let mut state = self.lock();
        state.faults.push(Installed {
            armed: fault.after.is_none(),
            fault,
            hits: 0,
        });
        FaultId(state.faults.len() - 1)
    }

    /// How many requests `fault` answered.
    pub fn hits(&self, fault: FaultId) -> usize {
        self.lock().faults[fault.0].hits
    }

    /// Rewrites running instances as pending in the next `polls` DescribeInstances answers that
    /// contain a running instance (slow boot); `usize::MAX` holds them pending for good.
    pub fn hold_pending(&self, polls: usize) {
        self.lock().pending_left = polls;
    }

    /// How many DescribeInstances answers were rewritten to pending.
    pub fn pending_hits(&self) -> usize {
        self.lock().pending_hits
    }

    /// Lets moto execute the next `n` RunInstances requests, then hangs up instead of answering,
    /// as a lost response does.
    pub fn drop_run_instances_responses(&self, n: usize) {
        self.lock().drops_left = n;
    }

    /// How many RunInstances responses were lost on purpose.
    pub fn dropped(&self) -> usize {
        self.lock().drop_hits
    }

    /// Makes target health realistic: the next `initial_answers` DescribeTargetHealth answers
    /// show every target `initial` (registration in progress), later ones show the targets in
    /// `unhealthy` as `unhealthy` (Target.ResponseCodeMismatch) and the rest as moto says.
    pub fn target_health(&self, initial_answers: usize, unhealthy: &[String]) {
        self.lock().target_health = TargetHealthPlan {
            initial_answers,
            unhealthy: unhealthy.to_vec(),
        };
    }

    /// How many DescribeTargetHealth answers were rewritten.
    pub fn target_health_hits(&self) -> usize {
        self.lock().target_health_hits
    }

    /// Gives each instance that DescribeInstances answers show for the first time the next of
    /// `pool` (in order of appearance) as its private and public address, from then on in every
    /// answer. Instances seen when the pool is empty keep moto's made-up addresses.
    pub fn map_addresses(&self, pool: &[String]) {
        self.lock().address_pool = pool.iter().rev().cloned().collect();
    }

    /// The address [`map_addresses`](Self::map_addresses) gave instance `id`.
    pub fn address_of(&self, id: &str) -> Option<String> {
        self.lock().addresses.get(id).cloned()
    }

    /// How many RunInstances requests were answered from a known ClientToken, not run again.
    pub fn replays(&self) -> usize {
        self.lock().replays
    }

    /// Every request seen so far, in order.
    pub fn calls(&self) -> Vec<Call> {
        self.lock().log.clone()
    }

    /// The actions of every request seen so far, in order.
    pub fn actions(&self) -> Vec<String> {
        self.lock().log.iter().map(|c| c.action.clone()).collect()
    }

    /// The requests for `action` seen so far, in order.
    pub fn calls_of(&self, action: &str) -> Vec<Call> {
        let log = &self.lock().log;
        log.iter().filter(|c| c.action == action).cloned().collect()
    }

    /// How many requests for `action` the shim saw.
    pub fn count(&self, action: &str) -> usize {
        self.calls_of(action).len()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Drop for Shim {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The forwarding side of a shim, cloned into every connection.
#[derive(Clone)]
struct Upstream {
    moto_port: u16,
    account: HeaderValue,
    state: Arc<Mutex<State>>,
}

/// What to do with a request, decided under the lock before any await.
enum Plan {
    Answer(Response<Full<Bytes>>),
    Forward,
}

impl Upstream {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Serves one request. An `Err` makes hyper close the connection without an answer.
    async fn handle(
        &self,
        request: Request<Incoming>,
    ) -> Result<Response<Full<Bytes>>, &'static str> {
        let (mut parts, body) = request.into_parts();
        let Ok(body) = body.collect().await.map(|b| b.to_bytes()) else {
            return Err("client went away mid-request");
        };
        let call = describe(&parts.headers, &body);
        match self.plan(&call) {
            Plan::Answer(response) => return Ok(response),
            Plan::Forward => {}
        }

        parts
            .headers
            .insert("x-moto-account-id", self.account.clone());
        let upstream = Request::from_parts(parts, Full::new(body));
        let response = match send(self.moto_port, upstream).await {
            Ok(response) => response,
            Err(e) => return Ok(plain(StatusCode::BAD_GATEWAY, e)),
        };
        self.after_forward(&call, response)
    }

    /// Logs the call and picks a replay or an injected error, if any applies.
    fn plan(&self, call: &Call) -> Plan {
        let mut state = self.lock();
        state.log.push(call.clone());
        if call.action == "RunInstances" {
            if let Some(token) = &call.client_token {
                if let Some(answer) = state.run_answers.get(token).cloned() {
                    state.replays += 1;
                    return Plan::Answer(xml(StatusCode::OK, answer));
                }
            }
        }
        let matching = state.faults.iter_mut().find(|f| {
            f.armed
                && f.fault.times > 0
                && f.fault.action.as_ref().is_none_or(|a| *a == call.action)
        });
        if let Some(installed) = matching {
            installed.fault.times -= 1;
            installed.hits += 1;
            let status = StatusCode::from_u16(installed.fault.status).expect("a valid HTTP status");
            return Plan::Answer(xml(status, error_body(&installed.fault.code, call)));
        }
        Plan::Forward
    }

    /// Arms dependent faults, remembers ClientTokens, and loses or rewrites the answer if asked.
    fn after_forward(
        &self,
        call: &Call,
        response: Response<Bytes>,
    ) -> Result<Response<Full<Bytes>>, &'static str> {
        let (mut parts, mut body) = response.into_parts();
        let mut state = self.lock();
        if parts.status.is_success() {
            for installed in state.faults.iter_mut() {
                if installed.fault.after.as_deref() == Some(call.action.as_str()) {
                    installed.armed = true;
                }
            }
            if call.action == "RunInstances" {
                if let Some(token) = &call.client_token {
                    state.run_answers.insert(token.clone(), body.clone());
                }
                if state.drops_left > 0 {
                    state.drops_left -= 1;
                    state.drop_hits += 1;
                    return Err("RunInstances response dropped on purpose");
                }
            }
            if call.action == "DescribeTargetHealth" {
                let plan = &mut state.target_health;
                let initial = plan.initial_answers > 0;
                if let Some(rewritten) = rewrite_target_health(&body, initial, &plan.unhealthy) {
                    body = rewritten;
                    plan.initial_answers = plan.initial_answers.saturating_sub(1);
                    state.target_health_hits += 1;
                }
            }
            if call.action == "DescribeInstances" {
                let state = &mut *state;
                if let Some(mapped) =
                    map_instance_addresses(&body, &mut state.address_pool, &mut state.addresses)
                {
                    body = mapped;
                }
            }
            if call.action == "DescribeInstances" && state.pending_left > 0 {
                if let Some(rewritten) = running_to_pending(&body) {
                    body = rewritten;
                    state.pending_left -= 1;
                    state.pending_hits += 1;
                }
            }
        }
        // The body may have changed length; hyper sets the framing of the new one.
        for header in [CONTENT_LENGTH, TRANSFER_ENCODING, CONNECTION] {
            parts.headers.remove(header);
        }
        Ok(Response::from_parts(parts, Full::new(body)))
    }
}

/// The action, ClientToken and region of a Query API request.
fn describe(headers: &hyper::HeaderMap, body: &[u8]) -> Call {
    let mut action = String::new();
    let mut client_token = None;
    for (key, value) in form_urlencoded::parse(body) {
        match key.as_ref() {
            "Action" => action = value.into_owned(),
            "ClientToken" => client_token = Some(value.into_owned()),
            _ => {}
        }
    }
    // The JSON protocol (ACM) names its action in a header.
    if let Some(target) = headers.get("x-amz-target").and_then(|v| v.to_str().ok()) {
        action = target.rsplit('.').next().unwrap_or(target).to_owned();
    }
    let scope = |part: usize| {
        headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|auth| auth.split("Credential=").nth(1))
            .and_then(|scope| scope.split('/').nth(part))
            .unwrap_or_default()
            .to_string()
    };
    Call {
        action,
        region: scope(2),
        service: scope(3),
        client_token,
    }
}

/// Every running instance in a DescribeInstances answer shown as pending, or `None` if none ran.
///
/// Works on each `<instanceState>` element whatever its layout (moto's serializer or real EC2's
/// pretty-printed XML).
fn running_to_pending(body: &Bytes) -> Option<Bytes> {
    const OPEN: &str = "<instanceState>";
    const CLOSE: &str = "</instanceState>";
    const PENDING: &str = "<instanceState><code>0</code><name>pending</name></instanceState>";
    let mut rest = std::str::from_utf8(body).ok()?;
    let mut out = String::with_capacity(rest.len());
    let mut rewritten = false;
    while let Some(start) = rest.find(OPEN) {
        let end = start + rest[start..].find(CLOSE)? + CLOSE.len();
        let state = &rest[start..end];
        out.push_str(&rest[..start]);
        if state.contains("<name>running</name>") {
            out.push_str(PENDING);
            rewritten = true;
        } else {
            out.push_str(state);
        }
        rest = &rest[end..];
    }
    out.push_str(rest);
    rewritten.then(|| Bytes::from(out))
}

/// The text of the first `<tag>` element in `xml`.
fn element<'a>(xml: &'a str, tag: &str) -> Option<&'a str> {
    let open = format!("<{tag}>");
    let start = xml.find(&open)? + open.len();
    let end = start + xml[start..].find('<')?;
    Some(&xml[start..end])
}

/// A DescribeInstances answer with the mapped instances' addresses (each instance's
/// `privateIpAddress` and `ipAddress` values, wherever they occur) replaced by the test host's;
/// instances seen for the first time take the next address of `pool` (its last element).
/// `None` when nothing changed.
fn map_instance_addresses(
    body: &Bytes,
    pool: &mut Vec<String>,
    given: &mut HashMap<String, String>,
) -> Option<Bytes> {
    let text = std::str::from_utf8(body).ok()?;
    let mut replacements: Vec<(String, String)> = Vec::new();
    let mut pieces = text.split("<instanceId>").skip(1).peekable();
    while let Some(piece) = pieces.next() {
        let id = piece.split('<').next().unwrap_or_default().to_owned();
        // The instance's own fields come before the next instance's id.
        let address = match given.get(&id) {
            Some(address) => address.clone(),
            None => match pool.pop() {
                Some(address) => {
                    given.insert(id.clone(), address.clone());
                    address
                }
                None => continue,
            },
        };
        for tag in ["privateIpAddress", "ipAddress"] {
            if let Some(ip) = element(piece, tag) {
                if ip != address {
                    replacements.push((format!(">{ip}<"), format!(">{address}<")));
                }
            }
        }
        while pieces
            .peek()
            .is_some_and(|p| p.starts_with(&format!("{id}<")))
        {
            pieces.next();
        }
    }
    if replacements.is_empty() {
        return None;
    }
    let mut out = text.to_owned();
    for (from, to) in replacements {
        out = out.replace(&from, &to);
    }
    Some(Bytes::from(out))
}

/// An error document as the call's service sends it: EC2's `<Response><Errors>`, or the
/// `<ErrorResponse>` of the other Query services (ELBv2).
fn error_body(code: &str, call: &Call) -> Bytes {
    let action = &call.action;
    let request_id = "00000000-0000-4000-8000-000000000000";
    Bytes::from(if call.service == "ec2" || call.service.is_empty() {
        format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Response><Errors><Error><Code>{code}</Code>\
             <Message>{code} injected by the test shim into {action}</Message></Error></Errors>\
             <RequestID>{request_id}</RequestID></Response>"
        )
    } else {
        format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<ErrorResponse><Error><Type>Sender</Type>\
             <Code>{code}</Code><Message>{code} injected by the test shim into {action}</Message>\
             </Error><RequestId>{request_id}</RequestId></ErrorResponse>"
        )
    })
}

/// A DescribeTargetHealth answer with every target `initial` (when `initial`), else with the
/// targets in `unhealthy` failing their checks; `None` when nothing changed.
fn rewrite_target_health(body: &Bytes, initial: bool, unhealthy: &[String]) -> Option<Bytes> {
    const OPEN: &str = "<TargetHealth>";
    const CLOSE: &str = "</TargetHealth>";
    let text = std::str::from_utf8(body).ok()?;
    let mut out = String::with_capacity(text.len());
    let mut rewritten = false;
    // One `<member>` per target; no list nests inside a TargetHealthDescription.
    let mut pieces = text.split("<member>");
    out.push_str(pieces.next()?);
    for member in pieces {
        out.push_str("<member>");
        let id = member
            .split("<Id>")
            .nth(1)
            .and_then(|rest| rest.split("</Id>").next())
            .unwrap_or_default();
        let replacement = if initial {
            Some(
                "<TargetHealth><State>initial</State><Reason>Elb.RegistrationInProgress</Reason>\
                  <Description>Target registration is in progress</Description></TargetHealth>",
            )
        } else if unhealthy.iter().any(|u| u == id) {
            Some("<TargetHealth><State>unhealthy</State><Reason>Target.ResponseCodeMismatch</Reason>\
                  <Description>Health checks failed with these codes: [503]</Description>\
                  </TargetHealth>")
        } else {
            None
        };
        match (replacement, member.find(OPEN), member.find(CLOSE)) {
            (Some(new), Some(start), Some(end)) if start < end => {
                out.push_str(&member[..start]);
                out.push_str(new);
                out.push_str(&member[end + CLOSE.len()..]);
                rewritten = true;
            }
            _ => out.push_str(member),
        }
    }
    rewritten.then(|| Bytes::from(out))
}

fn xml(status: StatusCode, body: Bytes) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = status;
    response.headers_mut().insert(
        "content-type",
        HeaderValue::from_static("text/xml;charset=UTF-8"),
    );
    response
}

fn plain(status: StatusCode, text: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(text)));
    *response.status_mut() = status;
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn target_health_turns_initial_then_unhealthy_for_the_chosen_targets() {
        let moto = Bytes::from(
            "<R><TargetHealthDescriptions><member><Target><Id>i-1</Id><Port>8000</Port></Target>\
             <TargetHealth><State>healthy</State></TargetHealth></member><member><Target>\
             <Id>i-2</Id></Target><TargetHealth><State>healthy</State></TargetHealth></member>\
             </TargetHealthDescriptions></R>",
        );
        let initial = rewrite_target_health(&moto, true, &[]).unwrap();
        let initial = std::str::from_utf8(&initial).unwrap();
        assert_eq!(
            initial.matches("<State>initial</State>").count(),
            2,
            "{initial}"
        );
        let later = rewrite_target_health(&moto, false, &["i-2".into()]).unwrap();
        let later = std::str::from_utf8(&later).unwrap();
        assert!(
            later.contains("<Id>i-1</Id><Port>8000</Port></Target><TargetHealth><State>healthy"),
            "{later}"
        );
        assert_eq!(
            later.matches("<State>unhealthy</State>").count(),
            1,
            "{later}"
        );
        assert!(rewrite_target_health(&moto, false, &[]).is_none());
    }

    #[test]
    fn instances_take_pool_addresses_in_order_of_appearance_and_keep_them() {
        let answer = |a: &str, b: &str| {
            Bytes::from(format!(
                "<item><instanceId>i-1</instanceId><privateIpAddress>{a}</privateIpAddress>\
                 <ipAddress>3.3.3.3</ipAddress><networkInterfaceSet><privateIpAddress>{a}\
                 </privateIpAddress></networkInterfaceSet></item><item><instanceId>i-2\
                 </instanceId><privateIpAddress>{b}</privateIpAddress></item>"
            ))
        };
        let mut pool = vec!["127.9.0.11".to_owned(), "127.9.0.10".to_owned()];
        let mut given = HashMap::new();
        let mapped = map_instance_addresses(&answer("10.0.0.1", "10.0.0.2"), &mut pool, &mut given)
            .expect("rewritten");
        let mapped = std::str::from_utf8(&mapped).unwrap();
        assert_eq!(mapped.matches(">127.9.0.10<").count(), 3, "{mapped}");
        assert_eq!(mapped.matches(">127.9.0.11<").count(), 1, "{mapped}");
        assert!(
            !mapped.contains("10.0.0.") && !mapped.contains("3.3.3.3"),
            "{mapped}"
        );
        assert!(pool.is_empty());
        assert_eq!(given["i-2"], "127.9.0.11");
    }

    #[test]
    fn only_running_states_become_pending_whatever_the_layout() {
        let body = Bytes::from(
            "<item><instanceState>\n  <code>16</code>\n  <name>running</name>\n</instanceState></item>\
             <item><instanceState><code>48</code><name>terminated</name></instanceState></item>",
        );
        let rewritten = running_to_pending(&body).expect("one instance was running");
        assert_eq!(
            std::str::from_utf8(&rewritten).unwrap(),
            "<item><instanceState><code>0</code><name>pending</name></instanceState></item>\
             <item><instanceState><code>48</code><name>terminated</name></instanceState></item>"
        );
        let none_running =
            Bytes::from("<instanceState><code>0</code><name>pending</name></instanceState>");
        assert!(running_to_pending(&none_running).is_none());
    }
}
