// bench/peers/probe.mjs - the security rows of bench/compare, against one
// server on 127.0.0.1 (coffre or its peer), sequentially, one new TCP
// connection per request (as a guesser's would be), every loop bounded.
//
//   node bench/peers/probe.mjs activate PORT CODES_FILE PASSWORD COUNT
//       coffre only: activates the first COUNT accounts of a
//       'login<TAB>code<TAB>expiry' file through POST /api/v1/activate.
//   node bench/peers/probe.mjs security CONFIG_JSON
//       CONFIG_JSON: { port, path, user_field, xff (bool),
//                      backoff: { login, wrong, right, tries },
//                      timing: { known: [logins], unknown: [logins], password } }
//       Prints one JSON object: backoff answers, and the response times of
//       a wrong password for known vs unknown logins, interleaved.
// With xff, each timing request carries its own X-Forwarded-For address
// (TEST-NET ranges, RFC 5737) so that coffre's per-address throttle (which
// a real guesser would meet first) does not hide the hashing path being
// timed; per-login throttling is avoided by using each login once.
import http from 'node:http';

const TIMEOUT_MS = 20000;

function testAddr(i) {
    const nets = ['192.0.2', '198.51.100', '203.0.113'];
    if (i < 0 || i >= 3 * 254)
        throw new Error('address index out of range');
    return `${nets[Math.floor(i / 254)]}.${(i % 254) + 1}`;
}

function post(port, path, obj, addr) {
    const body = JSON.stringify(obj);
    const headers = { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) };
    if (addr)
        headers['X-Forwarded-For'] = addr;
    return new Promise((resolve, reject) => {
        const t0 = process.hrtime.bigint();
        const req = http.request({ host: '127.0.0.1', port, method: 'POST', path, headers, agent: false,
                                   timeout: TIMEOUT_MS }, (res) => {
            let data = '';
            res.on('data', (c) => { data += c; });
            res.on('end', () => resolve({ status: res.statusCode, ms: Number(process.hrtime.bigint() - t0) / 1e6,
                                          retryAfter: res.headers['retry-after'] || null, body: data }));
        });
        req.on('timeout', () => req.destroy(new Error('timeout')));
        req.on('error', reject);
        req.end(body);
    });
}

function median(a) {
    const s = [...a].sort((x, y) => x - y);
    const n = s.length;
    return n % 2 ? s[(n - 1) / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
}

// 95 % bootstrap interval of median(a) - median(b), 2000 resamples, fixed seed.
function bootstrapDiff(a, b) {
    let seed = 12345;
    const rnd = () => { seed = (seed * 1103515245 + 12345) % 2147483648; return seed / 2147483648; };
    const pick = (x) => Array.from(x, () => x[Math.floor(rnd() * x.length)]);
    const d = [];
    for (let i = 0; i < 2000; i++)
        d.push(median(pick(a)) - median(pick(b)));
    d.sort((x, y) => x - y);
    return [d[49], d[1949]];
}

async function activate(port, file, password, count) {
    const { readFileSync } = await import('node:fs');
    const lines = readFileSync(file, 'utf8').split('\n').filter((l) => l).slice(0, count);
    if (lines.length < count)
        throw new Error(`only ${lines.length} codes in ${file}`);
    for (const l of lines) {
        const [login, code] = l.split('\t');
        const r = await post(port, '/api/v1/activate', { login, code, password });
        if (r.status !== 200)
            throw new Error(`activate ${login}: ${r.status} ${r.body}`);
    }
    console.log(JSON.stringify({ activated: lines.length }));
}

async function security(cfg) {
    const body = (login, password) => ({ [cfg.user_field]: login, password });
    const out = { backoff: { answers: {}, right: null }, timing: {} };
    // 1. tries wrong passwords, then the right one, from one address
    const b = cfg.backoff;
    const addr = cfg.xff ? testAddr(3 * 254 - 1) : null;
    for (let i = 0; i < b.tries; i++) {
        const r = await post(cfg.port, cfg.path, body(b.login, b.wrong), addr);
        out.backoff.answers[r.status] = (out.backoff.answers[r.status] || 0) + 1;
    }
    const r = await post(cfg.port, cfg.path, body(b.login, b.right), addr);
    out.backoff.right = { status: r.status, retryAfter: r.retryAfter };
    // refused for a while only? wait as told (at most 5 s) and try once more
    const wait = Number(r.retryAfter);
    if (r.status === 429 && wait > 0 && wait <= 5) {
        await new Promise((res) => setTimeout(res, wait * 1000 + 200));
        out.backoff.after_wait = (await post(cfg.port, cfg.path, body(b.login, b.right), addr)).status;
    }
    // 2. a wrong password for known vs unknown logins, interleaved
    const t = cfg.timing;
    const n = Math.min(t.known.length, t.unknown.length);
    const known = [], unknown = [], statuses = {};
    for (let i = 0; i < n; i++) {
        const k = await post(cfg.port, cfg.path, body(t.known[i], t.password), cfg.xff ? testAddr(2 * i) : null);
        const u = await post(cfg.port, cfg.path, body(t.unknown[i], t.password), cfg.xff ? testAddr(2 * i + 1) : null);
        known.push(k.ms);
        unknown.push(u.ms);
        statuses[`known ${k.status}`] = (statuses[`known ${k.status}`] || 0) + 1;
        statuses[`unknown ${u.status}`] = (statuses[`unknown ${u.status}`] || 0) + 1;
    }
    const [lo, hi] = bootstrapDiff(known, unknown);
    out.timing = { n, statuses, known_median_ms: median(known), unknown_median_ms: median(unknown),
                   diff_median_ms: median(known) - median(unknown), diff_ci95_ms: [lo, hi],
                   beyond_noise: lo > 0 || hi < 0 };
    console.log(JSON.stringify(out));
}

const [mode, ...args] = process.argv.slice(2);
try {
    if (mode === 'activate')
        await activate(Number(args[0]), args[1], args[2], Number(args[3]));
    else if (mode === 'security')
        await security(JSON.parse(args[0]));
    else
        throw new Error('usage: probe.mjs activate PORT CODES PASSWORD COUNT | security CONFIG_JSON');
} catch (e) {
    console.error(`probe: ${e.message}`);
    process.exit(1);
}
