'use strict';
// A client of the Runtime API (2018-06-01) over keep-alive HTTP/1.1 connections: one per
// invocation the runtime runs at once.

const http = require('http');

const API_PREFIX = '/2018-06-01/runtime';
const ERROR_TYPE_HEADER = 'Lambda-Runtime-Function-Error-Type';
// Lambda's limit on a synchronous response (6 MiB + 100 bytes); the Runtime API refuses larger
// bodies with 413.
const MAX_RESPONSE_BYTES = 6 * 1024 * 1024 + 100;

// Header values must be printable ASCII; an error's name is the user's and may be anything.
function headerSafe(text) {
  return String(text)
    .replace(/[^\x20-\x7e]/g, '?')
    .slice(0, 128);
}

class RapidClient {
  // `concurrency` is how many invocations run at once: each polls /next and posts its outcome
  // on a socket of its own, so the agent keeps that many open.
  constructor(address, concurrency = 1) {
    const colon = typeof address === 'string' ? address.lastIndexOf(':') : -1;
    if (colon <= 0) {
      throw new Error(`AWS_LAMBDA_RUNTIME_API must be host:port, not ${JSON.stringify(address)}`);
    }
    this.host = address.slice(0, colon).replace(/^\[|\]$/g, '');
    this.port = Number(address.slice(colon + 1));
    // Sockets kept open between requests (one unless invocations run concurrently). The agent
    // unrefs them while idle, so they do not keep the event loop alive while a handler runs:
    // that is how "the event loop is empty" is seen (see runtime.js).
    this.agent = new http.Agent({
      keepAlive: true,
      maxSockets: concurrency,
      maxFreeSockets: concurrency,
    });
  }

  // One request; resolves {status, headers, body} with the body as a string. A keep-alive
  // socket the server has closed is only noticed when it is reused: that is retried once on a
  // fresh one (a repeated post is harmless, the runner refuses a second answer).
  request(method, path, body, headers, retried = false) {
    return new Promise((resolve, reject) => {
      const options = {
        host: this.host,
        port: this.port,
        method,
        path: API_PREFIX + path,
        agent: this.agent,
        headers: Object.assign({}, headers),
      };
      if (body !== undefined) {
        options.headers['Content-Type'] = 'application/json';
        options.headers['Content-Length'] = Buffer.byteLength(body, 'utf8');
      }
      const req = http.request(options, (res) => {
        const chunks = [];
        res.on('data', (chunk) => chunks.push(chunk));
        res.on('end', () =>
          resolve({
            status: res.statusCode,
            headers: res.headers,
            body: Buffer.concat(chunks).toString('utf8'),
          }),
        );
        res.on('error', reject);
      });
      req.on('error', (err) => {
        if (!retried && req.reusedSocket && err.code === 'ECONNRESET') {
          resolve(this.request(method, path, body, headers, true));
        } else {
          reject(err);
        }
      });
      // Headers and body leave in one write.
      req.end(body, 'utf8');
    });
  }

  // The next invocation; waits for as long as it takes.
  async next() {
    const res = await this.request('GET', '/invocation/next');
    if (res.status !== 200) {
      throw new Error(`GET /invocation/next answered ${res.status}: ${res.body.slice(0, 200)}`);
    }
    const id = res.headers['lambda-runtime-aws-request-id'];
    if (!id) {
      throw new Error('GET /invocation/next answered without Lambda-Runtime-Aws-Request-Id');
    }
    return { id, headers: res.headers, body: res.body };
  }

  async post(path, body, headers) {
    const res = await this.request('POST', path, body, headers);
    if (res.status !== 202) {
      process.stderr.write(
        `[WARNING] POST ${API_PREFIX}${path} answered ${res.status}: ${res.body.slice(0, 200)}\n`,
      );
    }
    return res.status;
  }

  // Posts a serialised result. Returns the HTTP status: 413 when it is too large.
  postResponse(id, body) {
    if (Buffer.byteLength(body, 'utf8') > MAX_RESPONSE_BYTES) return Promise.resolve(413);
    return this.post(`/invocation/${encodeURIComponent(id)}/response`, body);
  }

  postError(id, doc) {
    return this.post(`/invocation/${encodeURIComponent(id)}/error`, JSON.stringify(doc), {
      [ERROR_TYPE_HEADER]: headerSafe(doc.errorType),
    });
  }

  postInitError(doc) {
    return this.post('/init/error', JSON.stringify(doc), {
      [ERROR_TYPE_HEADER]: headerSafe(doc.errorType),
    });
  }
}

module.exports = { RapidClient, MAX_RESPONSE_BYTES };
