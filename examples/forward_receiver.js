// A bot's endpoint for the relay's forwarded events (docs/forward.md), in Node.js with no packages:
// node's own http and crypto. It checks each request's Standard Webhooks signature and timestamp, and
// handles each webhook-id once (the relay delivers at least once). Run it with
//
//     RELAY_FORWARD_SECRET=whsec_... PORT=8000 node examples/forward_receiver.js
//
// With express (as a discord.js bot often has), mount `verify` and `receive` on a raw body:
//     app.post("/relay", express.raw({ type: "application/json" }), (req, res) => {
//       const { status } = receive(req.body, req.headers); res.sendStatus(status); });
"use strict";

const crypto = require("node:crypto");
const http = require("node:http");

const TOLERANCE_SECONDS = 5 * 60; // a signed request older (or newer) than this is refused: replays
const SEEN_IDS_KEPT = 100000; // keep them in your database instead, so a restart forgets none

const secret = process.env.RELAY_FORWARD_SECRET || "";
const key = Buffer.from(secret.replace(/^whsec_/, ""), "base64");
const seen = new Set();

function verify(body, headers) {   // body: the raw request bytes (a Buffer)
  const id = headers["webhook-id"];
  const timestamp = headers["webhook-timestamp"];
  const signatures = headers["webhook-signature"];
  if (!id || !timestamp || !signatures) return false;
  if (Math.abs(Date.now() / 1000 - Number(timestamp)) > TOLERANCE_SECONDS) return false;
  const signed = Buffer.concat([Buffer.from(`${id}.${timestamp}.`), body]);
  const expected = Buffer.from(crypto.createHmac("sha256", key).update(signed).digest("base64"));
  return signatures.split(" ").some((versioned) => {
    const [version, signature] = versioned.split(",");
    const given = Buffer.from(signature || "");
    return version === "v1" && given.length === expected.length && crypto.timingSafeEqual(given, expected);
  });
}

function handle(event) {
  // Your bot's work. Throwing answers 500, and the relay delivers the event again later.
  if (event.vote) console.log(`vote from user ${event.vote.user_id}`);
  else if (event.review) console.log(`${event.review.stars}-star review from user ${event.review.user_id}`);
}

function receive(body, headers) {
  if (!verify(body, headers)) return { status: 401 };
  const id = headers["webhook-id"];
  if (seen.has(id)) {
    console.log(JSON.stringify({ duplicate: id }));
    return { status: 204 }; // a 2xx: the relay stops sending this one
  }
  const event = JSON.parse(body.toString("utf8"));
  handle(event);
  seen.add(id); // only once handled: a failed handle is retried
  if (seen.size > SEEN_IDS_KEPT) seen.delete(seen.values().next().value);
  console.log(JSON.stringify({ received: id, type: event.type, event_id: event.event_id }));
  return { status: 204 };
}

const server = http.createServer((req, res) => {
  if (req.method !== "POST" || req.url !== "/relay") {
    res.writeHead(404).end();
    return;
  }
  const chunks = [];
  req.on("data", (chunk) => chunks.push(chunk));
  req.on("end", () => {
    let status = 500;
    try {
      status = receive(Buffer.concat(chunks), req.headers).status;
    } catch (error) {
      console.error(error);
    }
    res.writeHead(status).end();
  });
});

if (require.main === module) {
  if (!secret.startsWith("whsec_")) {
    console.error("set RELAY_FORWARD_SECRET to the relay's whsec_... secret");
    process.exit(1);
  }
  server.listen(Number(process.env.PORT || 8000), process.env.HOST || "127.0.0.1");
}

module.exports = { verify, receive };
