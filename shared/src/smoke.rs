//! `hub smoke --url URL --key KEY [--webhook-url URL]`: a deployed API (or
//! `hub serve`) end to end, as an integrator would use it: it creates,
//! reads, lists and deletes a patient and, given a URL, sends a webhook
//! test event there and waits for its delivery. Each step is printed with
//! its HTTP status and time as it finishes; the run fails at the first step
//! that does, after cleaning up what it created. The key is never printed.

use crate::domain::{parse_url, Url};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// One finished step.
#[derive(Debug, Clone)]
pub struct Step {
    pub name: String,
    pub ok: bool,
    /// The HTTP status of its (last) request, if one was answered.
    pub status: Option<u16>,
    pub elapsed: Duration,
    /// What went wrong, or a detail worth showing (an id, a count).
    pub detail: String,
}

impl Step {
    /// The line `hub smoke` prints.
    pub fn line(&self) -> String {
        format!(
            "{:<4}  {:<44} {:>3}  {:>7.1} ms  {}",
            if self.ok { "ok" } else { "FAIL" },
            self.name,
            self.status
                .map(|s| s.to_string())
                .unwrap_or_else(|| "-".into()),
            self.elapsed.as_secs_f64() * 1000.0,
            self.detail
        )
        .trim_end()
        .to_string()
    }
}

struct Answer {
    status: u16,
    body: Value,
}

struct Client {
    base: Url,
    key: String,
    tls: Arc<tokio_rustls::rustls::ClientConfig>,
}

const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

impl Client {
    async fn send(&self, method: &str, path: &str, body: Option<&Value>) -> Result<Answer, String> {
        tokio::time::timeout(REQUEST_TIMEOUT, self.exchange(method, path, body))
            .await
            .unwrap_or_else(|_| Err(format!("no answer within {} s", REQUEST_TIMEOUT.as_secs())))
    }

    async fn exchange(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Answer, String> {
        let u = &self.base;
        let addrs = crate::webhooks::deliver::resolve(u, false).await?;
        let (stream, _) = crate::tls::connect_first(&addrs).await?;
        if u.https {
            let tls = crate::tls::wrap(&self.tls, &u.host, stream).await?;
            self.http(tls, method, path, body).await
        } else {
            self.http(stream, method, path, body).await
        }
    }

    async fn http<S>(
        &self,
        stream: S,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Answer, String>
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                .await
                .map_err(|e| format!("HTTP handshake: {e}"))?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        let u = &self.base;
        let default_port = if u.https { 443 } else { 80 };
        let host = if u.port == default_port {
            u.host.clone()
        } else {
            format!("{}:{}", u.host, u.port)
        };
        let prefix = u.path.split('?').next().unwrap_or("").trim_end_matches('/');
        let mut req = hyper::Request::builder()
            .method(method)
            .uri(format!("{prefix}{path}"))
            .header("host", host)
            .header("authorization", format!("Bearer {}", self.key))
            .header("user-agent", "hub-smoke");
        let payload = match body {
            Some(b) => {
                req = req.header("content-type", "application/json");
                Bytes::from(b.to_string())
            }
            None => Bytes::new(),
        };
        let req = req
            .body(Full::new(payload))
            .map_err(|e| format!("request: {e}"))?;
        let resp = sender
            .send_request(req)
            .await
            .map_err(|e| format!("sending: {e}"))?;
        let status = resp.status().as_u16();
        let bytes = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| format!("reading the answer: {e}"))?
            .to_bytes();
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Ok(Answer { status, body })
    }
}

/// The answer's error message, for a failed step's line (never the key).
fn why(a: &Answer, wanted: u16) -> String {
    let message = a.body["message"].as_str().unwrap_or("");
    let name = a.body["name"].as_str().unwrap_or("");
    format!("expected {wanted}: {name} {message}")
        .trim()
        .to_string()
}

struct Run<'a> {
    client: Client,
    steps: Vec<Step>,
    print: &'a mut dyn FnMut(&Step),
    /// What the run created and still has to delete: (path, id).
    created: Vec<(String, String)>,
}

impl Run<'_> {
    fn record(&mut self, step: Step) -> bool {
        (self.print)(&step);
        let ok = step.ok;
        self.steps.push(step);
        ok
    }

    /// One request as one step; `Some(body)` when it answered `wanted`.
    async fn call(
        &mut self,
        name: &str,
        method: &str,
        path: &str,
        body: Option<&Value>,
        wanted: u16,
        check: impl FnOnce(&Value) -> Result<String, String>,
    ) -> Option<Value> {
        let t = Instant::now();
        let r = self.client.send(method, path, body).await;
        let elapsed = t.elapsed();
        let (ok, status, detail) = match &r {
            Ok(a) if a.status == wanted => match check(&a.body) {
                Ok(d) => (true, Some(a.status), d),
                Err(e) => (false, Some(a.status), e),
            },
            Ok(a) => (false, Some(a.status), why(a, wanted)),
            Err(e) => (false, None, e.clone()),
        };
        let step = Step {
            name: name.to_string(),
            ok,
            status,
            elapsed,
            detail,
        };
        if self.record(step) {
            r.ok().map(|a| a.body)
        } else {
            None
        }
    }

    /// The id of the first object of a list, or of one it creates (and
    /// deletes at the end) when the list is empty.
    async fn some(&mut self, path: &str, label: &str, create: Value) -> Option<String> {
        let list = self
            .call(
                &format!("find a {label}"),
                "GET",
                &format!("/v1/{path}?%24limit=1"),
                None,
                200,
                |b| match b["data"].as_array() {
                    Some(d) => Ok(d
                        .first()
                        .and_then(|o| o["id"].as_str())
                        .unwrap_or("none: creating one")
                        .to_string()),
                    None => Err("not a list".into()),
                },
            )
            .await?;
        if let Some(id) = list["data"][0]["id"].as_str() {
            return Some(id.to_string());
        }
        let made = self
            .call(
                &format!("create a {label}"),
                "POST",
                &format!("/v1/{path}"),
                Some(&create),
                201,
                id_of,
            )
            .await?;
        let id = made["id"].as_str()?.to_string();
        self.created.push((path.to_string(), id.clone()));
        Some(id)
    }

    async fn patient(&mut self) -> Option<()> {
        let clinic = self
            .some("clinics", "clinic", json!({"name": "hub smoke clinic"}))
            .await?;
        let status = self
            .some(
                "patient-statuses",
                "patient status",
                json!({"name": "hub smoke status"}),
            )
            .await?;
        let referral = self
            .some(
                "referral-sources",
                "referral source",
                json!({"name": "hub smoke referral"}),
            )
            .await?;
        let name = format!("Smoke Test {}", crate::ids::ulid());
        let patient = json!({
            "fullName": name, "primaryPhoneNumber": "07700 900123", "tracking": {"source": "hub smoke"},
            "primaryClinicId": clinic, "statusId": status, "referralId": referral
        });
        let made = self
            .call(
                "create a patient",
                "POST",
                "/v1/patients",
                Some(&patient),
                201,
                id_of,
            )
            .await?;
        let id = made["id"].as_str()?.to_string();
        self.created.push(("patients".into(), id.clone()));
        let want = id.clone();
        self.call(
            "read it",
            "GET",
            &format!("/v1/patients/{id}"),
            None,
            200,
            move |b| {
                if b["id"] == want.as_str() && b["fullName"] == name.as_str() {
                    Ok(want)
                } else {
                    Err("a different patient came back".into())
                }
            },
        )
        .await?;
        let want = id.clone();
        self.call(
            "list patients (newest first)",
            "GET",
            "/v1/patients?%24sort%5BcreatedAt%5D=-1&%24limit=10",
            None,
            200,
            move |b| {
                let data = b["data"].as_array().ok_or("not a list")?;
                if data.iter().any(|p| p["id"] == want.as_str()) {
                    Ok(format!("{} listed, the new one among them", data.len()))
                } else {
                    Err("the new patient is not in the list".into())
                }
            },
        )
        .await?;
        self.call(
            "delete it",
            "DELETE",
            &format!("/v1/patients/{id}"),
            None,
            200,
            id_of,
        )
        .await?;
        self.created.retain(|(_, c)| c != &id);
        self.call(
            "it is gone",
            "GET",
            &format!("/v1/patients/{id}"),
            None,
            404,
            |_| Ok(String::new()),
        )
        .await?;
        Some(())
    }

    async fn webhook(&mut self, url: &str) -> Option<()> {
        let endpoint = self
            .call(
                "create a webhook endpoint",
                "POST",
                "/v1/webhook-endpoints",
                Some(&json!({"url": url, "enabledEvents": ["patient.deleted"], "description": "hub smoke"})),
                201,
                id_of,
            )
            .await?;
        let id = endpoint["id"].as_str()?.to_string();
        self.created.push(("webhook-endpoints".into(), id.clone()));
        let event = self
            .call(
                "send it a test event",
                "POST",
                &format!("/v1/webhook-endpoints/{id}/test"),
                Some(&json!({})),
                202,
                id_of,
            )
            .await?;
        let event_id = event["id"].as_str().unwrap_or_default().to_string();
        // Delivery is asynchronous (stream, queue, delivery function): wait
        // for the attempt's record.
        let t = Instant::now();
        let mut status = None;
        let deadline = Duration::from_secs(60);
        let outcome = loop {
            match self
                .client
                .send(
                    "GET",
                    &format!("/v1/webhook-endpoints/{id}/deliveries?eventId={event_id}"),
                    None,
                )
                .await
            {
                Ok(a) if a.status == 200 => {
                    status = Some(a.status);
                    let first = a.body["data"].as_array().and_then(|d| d.first()).cloned();
                    if let Some(d) = first {
                        let code = d["responseStatus"]
                            .as_u64()
                            .map(|c| format!("the receiver answered {c}"))
                            .unwrap_or_default();
                        break if d["status"] == "succeeded" {
                            Ok(code)
                        } else {
                            Err(format!(
                                "delivery {}: {}",
                                d["status"].as_str().unwrap_or("?"),
                                d["error"].as_str().unwrap_or(&code)
                            ))
                        };
                    }
                }
                Ok(a) => {
                    status = Some(a.status);
                    break Err(why(&a, 200));
                }
                Err(e) => break Err(e),
            }
            if t.elapsed() > deadline {
                break Err(format!(
                    "no delivery attempt within {} s",
                    deadline.as_secs()
                ));
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        };
        let ok = outcome.is_ok();
        self.record(Step {
            name: "the test event is delivered".into(),
            ok,
            status,
            elapsed: t.elapsed(),
            detail: outcome.unwrap_or_else(|e| e),
        });
        ok.then_some(())
    }

    /// Delete what the run created, newest first (a failed run too).
    async fn clean_up(&mut self) -> bool {
        let mut ok = true;
        while let Some((path, id)) = self.created.pop() {
            let label = match path.as_str() {
                "webhook-endpoints" => "delete the webhook endpoint".to_string(),
                "patients" => "delete the patient".to_string(),
                other => format!("delete the {} it created", other.trim_end_matches('s')),
            };
            ok &= self
                .call(
                    &label,
                    "DELETE",
                    &format!("/v1/{path}/{id}"),
                    None,
                    200,
                    |_| Ok(String::new()),
                )
                .await
                .is_some();
        }
        ok
    }
}

fn id_of(b: &Value) -> Result<String, String> {
    b["id"]
        .as_str()
        .map(String::from)
        .ok_or_else(|| "no id in the answer".into())
}

/// Run the smoke test; `print` sees each step as it finishes. True when
/// every step passed.
pub async fn run(
    url: &str,
    key: &str,
    webhook_url: Option<&str>,
    print: &mut dyn FnMut(&Step),
) -> Result<bool, String> {
    let base = parse_url(url.trim_end_matches('/'))
        .ok_or("--url must be an absolute http:// or https:// URL (the ApiUrl output)")?;
    if let Some(w) = webhook_url {
        parse_url(w).ok_or("--webhook-url must be an absolute http:// or https:// URL")?;
    }
    if key.trim().is_empty() {
        return Err("--key must be a secret key (sk_test_… or sk_live_…)".into());
    }
    let client = Client {
        base,
        key: key.trim().to_string(),
        tls: crate::tls::client_config(None)?,
    };
    let mut run = Run {
        client,
        steps: Vec::new(),
        print,
        created: Vec::new(),
    };
    let mut ok = run
        .call("health", "GET", "/health", None, 200, |_| Ok(String::new()))
        .await
        .is_some()
        && run.patient().await.is_some();
    if ok {
        if let Some(w) = webhook_url {
            ok = run.webhook(w).await.is_some();
        }
    }
    ok &= run.clean_up().await;
    Ok(ok)
}
