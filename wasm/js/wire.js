// Reads what the engine writes in its wire form (wasm/src/wire.rs): send results
// and batches of messages, laid out as bytes in wasm memory, read here with one
// DataView instead of one engine call per field.

import { native } from "./engine.js";
import { InvalidArgumentError } from "./errors.js";

const STATUS = ["SEND_OK", "FLUSH_DISK_TIMEOUT"];
const ABSENT = 0xffffffff;
const utf8 = new TextDecoder();

let memory = null;
let bytes = new Uint8Array(0);
let view = new DataView(new ArrayBuffer(0));

/**
 * Views of wasm memory, renewed when the memory has grown (the old buffer is then
 * detached: length 0). A typed array's `length`, not its `byteLength`: V8's optimizing
 * compiler inlines the one and calls out for the other.
 */
function refresh() {
  if (bytes.length === 0) {
    if (memory === null) memory = native.wasmMemory();
    bytes = new Uint8Array(memory.buffer);
    view = new DataView(memory.buffer);
  }
}

const SHORT = 64;
/** Reused arrays of char codes, one per length up to SHORT. */
const codes = Array.from({ length: SHORT + 1 }, (_, n) => new Array(n).fill(0));

/** A string of `len` UTF-8 bytes at `at` in `u8`: short ASCII without TextDecoder. */
export function text(u8, at, len) {
  if (len > SHORT) return utf8.decode(u8.subarray(at, at + len));
  const a = codes[len];
  for (let i = 0; i < len; i++) {
    const c = u8[at + i];
    if (c > 0x7f) return utf8.decode(u8.subarray(at, at + len));
    a[i] = c;
  }
  return String.fromCharCode.apply(null, a);
}

let stageAt = -1;
let stageSize = 0;
const utf8In = new TextEncoder();

// ------------------------------------------------------------ sends (JS to engine)

/** The send options, in the order of their bits in the encoding (wasm/src/wire.rs). */
export const SEND_OPTIONS = ["tags", "keys", "properties", "shardingKey", "queueId", "delayLevel", "deliverAt", "delayMs", "dedupId"];

/** The bit of send option `name` in the encoding, or 0 for no such option (a switch of interned strings: no lookup in an object's keys). */
function optionBit(name) {
  switch (name) {
    case "tags":
      return 1;
    case "keys":
      return 2;
    case "properties":
      return 4;
    case "shardingKey":
      return 8;
    case "queueId":
      return 16;
    case "delayLevel":
      return 32;
    case "deliverAt":
      return 64;
    case "delayMs":
      return 128;
    case "dedupId":
      return 256;
    default:
      return 0;
  }
}

function unknownOption(name) {
  throw new InvalidArgumentError(`invalid argument: send options: unknown option "${name}" (known: ${SEND_OPTIONS.join(", ")})`);
}

// An encoding goes straight into the engine's staging area in wasm memory (`out` is
// then the view of all of it, `base` where the area starts, `end` where it ends), so
// a send copies its body once on this side and makes no objects. One that outgrows
// the area, or one wanted as bytes, is in `spare`, a buffer of this module's (`base`
// 0). `at` is where the next byte goes, in `out`.
let spare = new Uint8Array(1024);
let spareView = new DataView(spare.buffer);
let out = spare;
let outView = spareView;
let base = 0;
let end = spare.length;
let at = 0;

/** Starts an encoding: in the staging area unless `asBytes`. */
function begin(asBytes) {
  if (asBytes) {
    out = spare;
    outView = spareView;
    base = at = 0;
    end = spare.length;
    return;
  }
  if (stageAt < 0) [stageAt, stageSize] = native.stagingArea();
  refresh();
  out = bytes;
  outView = view;
  base = at = stageAt;
  end = stageAt + stageSize;
}

/** Moves the encoding so far to `spare` (from the staging area, or to a larger `spare`), with room for `n` more bytes. */
function toSpare(n) {
  const len = at - base;
  if (len + n > spare.length) {
    spare = new Uint8Array(Math.max(spare.length * 2, len + n));
    spareView = new DataView(spare.buffer);
  }
  spare.set(out.subarray(base, at));
  out = spare;
  outView = spareView;
  base = 0;
  at = len;
  end = spare.length;
}

/**
 * `Uint8Array.prototype.set`, called on `out` with no property lookup: `out` is a
 * view of wasm memory or of `spare`, and V8 makes that lookup a generic one.
 */
const setBytes = Uint8Array.prototype.set;

/** Makes room for `n` more bytes. */
function room(n) {
  if (at + n > end) toSpare(n);
}

function u32(v) {
  room(4);
  putU32(at, v);
  at += 4;
}

/** `v` as 4 bytes, little-endian, at `i` in `out` (byte stores: V8 calls out for a DataView's). */
function putU32(i, v) {
  out[i] = v;
  out[i + 1] = v >>> 8;
  out[i + 2] = v >>> 16;
  out[i + 3] = v >>> 24;
}

function f64(v) {
  room(8);
  outView.setFloat64(at, v, true);
  at += 8;
}

/** A length-prefixed UTF-8 string (at most 3 bytes a UTF-16 unit); short ASCII without TextEncoder. */
function str(s) {
  const n = s.length;
  room(4 + 3 * n);
  let i = 0;
  for (; i < n && n <= SHORT; i++) {
    const c = s.charCodeAt(i);
    if (c > 0x7f) break;
    out[at + 4 + i] = c;
  }
  if (i !== n && s.isWellFormed?.() === false) notText(s);
  const len = i === n ? n : utf8In.encodeInto(s, out.subarray(at + 4)).written;
  u32(len);
  at += len;
}

/** Refuses text with a lone surrogate, which UTF-8 cannot hold (TextEncoder would put U+FFFD in its place). */
function notText(s) {
  let i = 0;
  for (; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 0xdc00 && c <= 0xdfff) break;
    if (c >= 0xd800 && c <= 0xdbff) {
      const d = s.charCodeAt(i + 1);
      if (!(d >= 0xdc00 && d <= 0xdfff)) break;
      i++;
    }
  }
  throw new InvalidArgumentError(`invalid argument: text must be valid Unicode: a lone surrogate at position ${i}`);
}

function typed(what, v, type) {
  if (typeof v !== type) throw new TypeError(`${what} must be a ${type}`);
  return v;
}

/**
 * Whether `o` is an object made by `{}` (its prototype Object.prototype). The
 * constructor's load gives V8's optimizing compiler the object's shape, and with it
 * the prototype: the usual object is checked with no call out.
 */
export function usualObject(o) {
  return typeof o === "object" && o !== null && o.constructor === Object && Object.getPrototypeOf(o) === Object.prototype;
}

/** (In a for-in loop, V8's optimizing compiler answers `hasOwnProperty.call(o, key)` from the object's shape.) */
const hasOwnProperty = Object.prototype.hasOwnProperty;

/** The option bit that says the properties are in a record's own text (`name \x01 value \x02` each), not in pairs. */
const ENCODED_PROPERTIES = 0x200;

/**
 * Encodes user properties (own names only, as Object.keys gives): `asText`, as one
 * `str` in the text a record holds them in (false, with the encoding to be cut back,
 * when a name or value is empty or holds a separator); else as `u32 n` and n pairs of
 * `str`.
 */
function properties(props, asText) {
  // The length (or count) goes in front once the rest is written.
  const lenAt = at - base;
  u32(0);
  let n = 0;
  let plain = true;
  if (props instanceof Map) {
    for (const [name, v] of props) {
      if (typeof name !== "string") throw new TypeError("property names must be strings");
      plain = pair(name, v, asText) && plain;
      n++;
    }
  } else {
    if (!usualObject(props) && props !== null) {
      const proto = typeof props !== "object" ? undefined : Object.getPrototypeOf(props);
      if (proto !== Object.prototype && proto !== null) {
        throw new TypeError("properties must be an object (or a Map) of strings");
      }
    }
    for (const name in props) {
      if (!hasOwnProperty.call(props, name)) continue;
      plain = pair(name, props[name], asText) && plain;
      n++;
    }
  }
  putU32(base + lenAt, asText ? at - base - lenAt - 4 : n);
  return plain;
}

/** One property of `properties`: as text, or as two `str`; whether the text holds it as it is. */
function pair(name, v, asText) {
  if (typeof v !== "string") throw new TypeError(`property ${name} must be a string`);
  if (!asText) {
    str(name);
    str(v);
    return true;
  }
  const plainName = textIn(name, 1);
  return textIn(v, 2) && plainName;
}

/** Writes `s` as UTF-8 and then the separator `sep`; whether `s` is non-empty and free of the separators 1 and 2. */
function textIn(s, sep) {
  const n = s.length;
  room(3 * n + 1);
  let plain = n > 0;
  let i = 0;
  for (; i < n && n <= SHORT; i++) {
    const c = s.charCodeAt(i);
    if (c > 0x7f) break;
    if (c === 1 || c === 2) plain = false;
    out[at + i] = c;
  }
  if (i === n) {
    at += n;
  } else {
    if (s.isWellFormed?.() === false) notText(s);
    at += utf8In.encodeInto(s, out.subarray(at, at + 3 * n)).written;
    plain = plain && !s.includes("\x01") && !s.includes("\x02");
  }
  out[at++] = sep;
  return plain;
}

/** Encodes one message; an option of an unknown name is refused here, in the one pass over `o`. */
function message(body, o) {
  let bits = 0;
  if (o !== undefined) {
    for (const k in o) {
      const bit = optionBit(k);
      if (bit === 0) unknownOption(k);
      const v = o[k];
      if (v !== undefined && v !== null) bits |= bit;
    }
  }
  room(2);
  // (From `base`: the encoding may move to `spare` as it grows.)
  const bitsAt = at - base;
  out[at++] = bits & 0xff;
  out[at++] = bits >> 8;
  if (typeof body === "string") str(body);
  else {
    u32(body.length);
    room(body.length);
    setBytes.call(out, body, at);
    at += body.length;
  }
  if (bits & 1) str(typed("tags", o.tags, "string"));
  if (bits & 2) {
    const keys = o.keys;
    if (typeof keys === "string") {
      u32(1);
      str(keys);
    } else {
      if (!Array.isArray(keys)) throw new TypeError("keys must be a string or an array of strings");
      const n = keys.length;
      u32(n);
      for (let i = 0; i < n; i++) str(typed("a key", keys[i], "string"));
    }
  }
  if (bits & 4) {
    const from = at - base;
    if (properties(o.properties, true)) {
      out[base + bitsAt + 1] |= ENCODED_PROPERTIES >> 8;
    } else {
      // A name or value a record's text cannot hold as it is: as pairs, for the
      // engine to refuse with its words.
      at = base + from;
      properties(o.properties, false);
    }
  }
  if (bits & 8) str(typed("shardingKey", o.shardingKey, "string"));
  if (bits & 16) f64(typed("queueId", o.queueId, "number"));
  if (bits & 32) f64(typed("delayLevel", o.delayLevel, "number"));
  if (bits & 64) f64(typed("deliverAt", o.deliverAt instanceof Date ? o.deliverAt.getTime() : o.deliverAt, "number"));
  if (bits & 128) f64(typed("delayMs", o.delayMs, "number"));
  if (bits & 256) str(typed("dedupId", o.dedupId, "string"));
}

/**
 * Encodes messages to send (`bodies[i]` with `options[i]`, or `undefined`) for
 * wasm/src/wire.rs. Returns the encoded length when it was copied to the engine's
 * staging area, else (too large to stage, or `asBytes`) the encoded bytes.
 */
export function encodeSend(bodies, options, asBytes = false) {
  begin(asBytes);
  try {
    u32(bodies.length);
    for (let i = 0; i < bodies.length; i++) message(bodies[i], options[i]);
  } catch (e) {
    if (lost()) return encodeSend(bodies, options, true);
    throw e;
  }
  return lost() ? encodeSend(bodies, options, true) : staged();
}

/** `encodeSend` of one message, with no arrays built for it. */
export function encodeOne(body, options, asBytes = false) {
  begin(asBytes);
  try {
    u32(1);
    message(body, options);
  } catch (e) {
    if (lost()) return encodeOne(body, options, true);
    throw e;
  }
  return lost() ? encodeOne(body, options, true) : staged();
}

/**
 * Whether wasm memory grew while the encoding was being written into it (an option's
 * getter that calls the engine): its buffer is then detached and the writes are lost,
 * so the message is encoded again, as bytes.
 */
function lost() {
  return out !== spare && out.length === 0;
}

/** The encoding's length when it is in the staging area, else its bytes. */
function staged() {
  return out === spare ? spare.slice(0, at) : at - base;
}

/** The next due time (or -1) that the last `readSendResult` read. */
export let lastNextDue = -1;

// A store's ids are 32 hex digits: its nonce, then the record's offset in the log. Ids
// made one after another share their first 29 digits for 4 KiB of log, so those are
// decoded once and kept with their bytes (as 7 words and a byte); an id that starts
// with them is that text and its last three characters.
const ID_LEN = 32;
const ID_HEAD = 29;
let idHead = null;
const idWords = new Uint32Array(7);
let idByte = 0;

/** A message id at `at` in `u8` (wasm memory unless given, `dv` its view). */
function msgIdAt(at, len, u8 = bytes, dv = view) {
  if (len !== ID_LEN) return text(u8, at, len);
  const a = u8[at + ID_HEAD];
  const b = u8[at + ID_HEAD + 1];
  const c = u8[at + ID_HEAD + 2];
  if (
    (a | b | c) < 0x80 &&
    idHead !== null &&
    u8[at + ID_HEAD - 1] === idByte &&
    dv.getUint32(at, true) === idWords[0] &&
    dv.getUint32(at + 4, true) === idWords[1] &&
    dv.getUint32(at + 8, true) === idWords[2] &&
    dv.getUint32(at + 12, true) === idWords[3] &&
    dv.getUint32(at + 16, true) === idWords[4] &&
    dv.getUint32(at + 20, true) === idWords[5] &&
    dv.getUint32(at + 24, true) === idWords[6]
  ) {
    return idHead + String.fromCharCode(a, b, c);
  }
  const id = text(u8, at, len);
  if (id.length === ID_LEN) {
    // One character a byte (each decoded on its own: ASCII, or U+FFFD for a byte that
    // is no character), so the first 29 characters are the first 29 bytes' text,
    // whatever ASCII follows them.
    for (let i = 0; i < 7; i++) idWords[i] = dv.getUint32(at + 4 * i, true);
    idByte = u8[at + ID_HEAD - 1];
    idHead = id.slice(0, ID_HEAD);
  }
  return id;
}

/** The one send result at `ptr` as a SendResult object of `topic`. */
export function readSendResult(ptr, topic) {
  refresh();
  lastNextDue = view.getFloat64(ptr, true);
  const idLen = view.getUint32(ptr + 36, true);
  const status = view.getUint32(ptr + 32, true);
  const result = {
    msgId: msgIdAt(ptr + 40, idLen),
    topic,
    queueId: view.getUint32(ptr + 28, true),
    queueOffset: view.getFloat64(ptr + 12, true),
    commitlogOffset: view.getFloat64(ptr + 20, true),
    status: STATUS[status & 0xff],
    duplicate: (status & 0x100) !== 0,
  };
  if (status & 0x200) result.recallHandle = recallHandleAt(ptr + 40 + idLen);
  return result;
}

/** The recall handle at `at` (its length, then its bytes). */
function recallHandleAt(at) {
  return text(bytes, at + 4, view.getUint32(at, true));
}

/** The send results at `ptr`: calls `each(msgId, queueId, queueOffset, commitlogOffset, status, duplicate, recallHandle)`; returns the next due time (or -1). */
export function readSendResults(ptr, each) {
  refresh();
  const nextDue = view.getFloat64(ptr, true);
  const count = view.getUint32(ptr + 8, true);
  let p = ptr + 12;
  for (let i = 0; i < count; i++) {
    const queueOffset = view.getFloat64(p, true);
    const commitlogOffset = view.getFloat64(p + 8, true);
    const queueId = view.getUint32(p + 16, true);
    const status = view.getUint32(p + 20, true);
    const idLen = view.getUint32(p + 24, true);
    const msgId = text(bytes, p + 28, idLen);
    p += 28 + idLen;
    let recallHandle;
    if (status & 0x200) {
      recallHandle = recallHandleAt(p);
      p += 4 + view.getUint32(p, true);
    }
    each(msgId, queueId, queueOffset, commitlogOffset, STATUS[status & 0xff], (status & 0x100) !== 0, recallHandle);
  }
  return nextDue;
}

/**
 * The messages of a batch, built by `make(fields, index)`. The batch's bytes are
 * copied out of wasm memory once; bodies are views of that copy.
 */
export function readMessages(ptr, make) {
  refresh();
  const total = view.getUint32(ptr, true);
  const u8 = bytes.slice(ptr, ptr + total);
  const dv = new DataView(u8.buffer);
  const count = dv.getUint32(4, true);
  const out = new Array(count);
  let p = 8;
  let lastTopicAt = -1;
  let lastTopicLen = 0;
  let lastTopic = "";
  const str = () => {
    const len = dv.getUint32(p, true);
    const s = text(u8, p + 4, len);
    p += 4 + len;
    return s;
  };
  for (let i = 0; i < count; i++) {
    const queueOffset = dv.getFloat64(p, true);
    const commitlogOffset = dv.getFloat64(p + 8, true);
    const bornTimestamp = dv.getFloat64(p + 16, true);
    const storeTimestamp = dv.getFloat64(p + 24, true);
    const queueId = dv.getUint32(p + 32, true);
    const reconsumeTimes = dv.getUint32(p + 36, true);
    const deliveryAttempt = dv.getUint32(p + 40, true);
    const idLen = dv.getUint32(p + 44, true);
    const msgId = msgIdAt(p + 48, idLen, u8, dv);
    p += 48 + idLen;
    let receiptHandle = null;
    if (dv.getUint32(p, true) === ABSENT) p += 4;
    else receiptHandle = str();
    // Messages of a batch mostly share a topic: decode it once.
    const topicLen = dv.getUint32(p, true);
    let topic;
    if (topicLen === lastTopicLen && lastTopicAt >= 0 && sameBytes(u8, lastTopicAt, p + 4, topicLen)) {
      topic = lastTopic;
    } else {
      topic = lastTopic = text(u8, p + 4, topicLen);
      lastTopicAt = p + 4;
      lastTopicLen = topicLen;
    }
    p += 4 + topicLen;
    let tags = null;
    if (dv.getUint32(p, true) === ABSENT) p += 4;
    else tags = str();
    const nKeys = dv.getUint32(p, true);
    p += 4;
    const keys = [];
    for (let k = 0; k < nKeys; k++) keys.push(str());
    const nProps = dv.getUint32(p, true);
    p += 4;
    const properties = {};
    for (let k = 0; k < nProps; k++) {
      const name = str();
      properties[name] = str();
    }
    const bodyLen = dv.getUint32(p, true);
    const body = u8.subarray(p + 4, p + 4 + bodyLen);
    p += 4 + bodyLen;
    out[i] = make(
      msgId,
      topic,
      queueId,
      queueOffset,
      commitlogOffset,
      body,
      tags,
      keys,
      properties,
      bornTimestamp,
      storeTimestamp,
      reconsumeTimes,
      deliveryAttempt,
      receiptHandle,
      i,
    );
  }
  return out;
}

function sameBytes(u8, a, b, len) {
  for (let i = 0; i < len; i++) if (u8[a + i] !== u8[b + i]) return false;
  return true;
}

// ---------------------------------------------------------------- option checks
// Shared by the engine's wrapper (pocketmq.js) and connect() (remote.js).

/** An object of options: not an array, buffer, Date, Map or Set. */
export function isPlainObject(v) {
  return (
    v !== null &&
    typeof v === "object" &&
    !Array.isArray(v) &&
    !ArrayBuffer.isView(v) &&
    !(v instanceof ArrayBuffer) &&
    !(v instanceof Date) &&
    !(v instanceof Map) &&
    !(v instanceof Set)
  );
}

/** `v` as an object of options (null and undefined: none), of `known` names when given. */
export function optionsObject(what, v, known) {
  if (v === undefined || v === null) return {};
  if (!isPlainObject(v)) throw new TypeError(`${what} must be an object`);
  if (known) {
    for (const key of Object.keys(v)) {
      if (!known.includes(key)) {
        throw new InvalidArgumentError(`invalid argument: ${what}: unknown option "${key}" (known: ${known.join(", ")})`);
      }
    }
  }
  return v;
}
