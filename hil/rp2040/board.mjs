#!/usr/bin/env node
// The emulated RP2040 board process (rp2040js, pinned in package.json): boots a UF2 with a boot ROM,
// models the QSPI flash chip (erase/program, persisted to a file) and exposes USB CDC, I2C0 and the
// ADC to a controller (hil/rp2040/board.py) over two pipes (--fds IN,OUT: commands in, events out).
// Everything is synchronous: the emulator runs only inside a `run` command, and stops (in emulated
// time too) while an I2C byte or an ADC conversion waits for the controller's answer.
// The protocol is in hil/rp2040/README.md.
//
//   node board.mjs --fds IN,OUT --uf2 FW.uf2 --bootrom bootrom.bin --flash flash.bin [--uid HEX16] [--i2c 0]
import fs from 'node:fs';
import { RP2040, USBCDC, GPIOPinState, BasePeripheral } from 'rp2040js';

const FLASH_SIZE = 2 * 1024 * 1024; // the Pico's W25Q16JV
const CYCLE_NS = 8; // 125 MHz

function die(msg) {
  process.stderr.write('rp2040 board: ' + msg + '\n');
  process.exit(2);
}

const args = {};
for (let i = 2; i < process.argv.length; i += 2) {
  const k = process.argv[i];
  if (!k.startsWith('--') || i + 1 >= process.argv.length) die('usage: --fds IN,OUT --uf2 F --bootrom F --flash F [--uid HEX16] [--i2c N]');
  args[k.slice(2)] = process.argv[i + 1];
}
for (const k of ['uf2', 'bootrom', 'flash', 'fds']) if (!args[k]) die('missing --' + k);
const [IN, OUT] = args.fds.split(',').map(Number); // the command and event pipes the controller passed

// --- protocol: every message is type (1 byte) + length (u16 LE) + payload -------------------------
const outq = []; // events not yet written (batched until the controller must answer)
function send(type, payload) {
  const b = Buffer.alloc(3 + (payload ? payload.length : 0));
  b[0] = type.charCodeAt(0);
  b.writeUInt16LE(payload ? payload.length : 0, 1);
  if (payload) Buffer.from(payload.buffer ? payload : Buffer.from(payload)).copy(b, 3);
  outq.push(b);
}
function flush() {
  if (!outq.length) return;
  const b = outq.length === 1 ? outq[0] : Buffer.concat(outq);
  outq.length = 0;
  let off = 0;
  while (off < b.length) {
    try {
      off += fs.writeSync(OUT, b, off, b.length - off);
    } catch (e) {
      if (e.code === 'EAGAIN') continue;
      process.exit(0); // the controller is gone: the board loses power
    }
  }
}
const hdr = Buffer.alloc(3);
function readFull(buf, n) {
  let got = 0;
  while (got < n) {
    let k;
    try {
      k = fs.readSync(IN, buf, got, n - got, null);
    } catch (e) {
      if (e.code === 'EAGAIN') continue;
      process.exit(0);
    }
    if (k === 0) process.exit(0);
    got += k;
  }
}
function recv() {
  flush();
  readFull(hdr, 3);
  const n = hdr.readUInt16LE(1);
  const body = Buffer.alloc(n);
  if (n) readFull(body, n);
  return [String.fromCharCode(hdr[0]), body];
}
/** Send a request and wait for its answer of the given type. */
function ask(type, payload, answer) {
  send(type, payload);
  const [t, body] = recv();
  if (t !== answer) die(`protocol: expected '${answer}' after '${type}', got '${t}'`);
  return body;
}

// --- the chip ------------------------------------------------------------------------------------
const mcu = new RP2040();
mcu.logger = { debug() {}, info() {}, warn() {}, error(c, m) { process.stderr.write(`${c}: ${m}\n`); } };
mcu.loadBootrom(new Uint32Array(new Uint8Array(fs.readFileSync(args.bootrom)).buffer));

// flash: the image file first (the filesystem), then the UF2 over it (the firmware)
let flashFd;
try {
  flashFd = fs.openSync(args.flash, fs.existsSync(args.flash) ? 'r+' : 'w+');
} catch (e) {
  die(`cannot open the flash image ${args.flash}: ${e.message}`);
}
const flashBytes = fs.fstatSync(flashFd).size;
if (flashBytes === FLASH_SIZE) {
  fs.readSync(flashFd, mcu.flash, 0, FLASH_SIZE, 0);
} else if (flashBytes === 0) {
  fs.writeSync(flashFd, mcu.flash, 0, FLASH_SIZE, 0); // erased (0xFF)
} else {
  die(`${args.flash} is ${flashBytes} bytes, not a ${FLASH_SIZE}-byte flash image; move it away to start blank`);
}
let flashOps = 0; // erases and programs since boot (reported in `D`)
let cutIn = 0; // `c`: power fails during the cutIn-th flash operation from now (0: not armed)
let resetReason = 0;
function persist(off, n) {
  fs.writeSync(flashFd, mcu.flash, off, n, off); // write-through: a kill -9 keeps every finished operation
}
// An erase or program about to start: the part of it that happens. 1, or 0.5 when the power fails
// during it (the chip stops mid-operation, after its first half), then 0 for any later one; the board
// stops (`X` 2) and the controller power-cycles it.
function flashOp() {
  if (resetReason) return 0;
  flashOps++;
  if (cutIn && --cutIn === 0) { resetReason = 2; return 0.5; }
  return 1;
}

const uf2 = fs.readFileSync(args.uf2);
if (uf2.length % 512 || !uf2.length) die(`${args.uf2} is not a UF2 file (size ${uf2.length} is not a multiple of 512)`);
let blocks = 0;
for (let off = 0; off < uf2.length; off += 512) {
  // a UF2 block: magic 0x0A324655 0x9E5D5157, flags, target address, payload size, ..., data at 32, end magic 0x0AB16F30
  if (uf2.readUInt32LE(off) !== 0x0a324655 || uf2.readUInt32LE(off + 4) !== 0x9e5d5157 || uf2.readUInt32LE(off + 508) !== 0x0ab16f30) {
    die(`${args.uf2}: block ${off / 512} has no UF2 magic; is it a UF2 file?`);
  }
  const flags = uf2.readUInt32LE(off + 8);
  if (flags & 1) continue; // "not main flash"
  const addr = uf2.readUInt32LE(off + 12);
  const size = uf2.readUInt32LE(off + 16);
  if (addr < 0x10000000 || addr + size > 0x10000000 + FLASH_SIZE || size > 476) die(`${args.uf2}: block ${off / 512} is outside the flash`);
  uf2.copy(mcu.flash, addr - 0x10000000, off + 32, off + 32 + size);
  blocks++;
}
if (!blocks) die(`${args.uf2} has no block for the RP2040's flash`);

// QSPI flash chip behind the SSI, driven by the boot ROM's flash functions (chip select forced through
// IO_QSPI's SS override). XIP reads bypass this (rp2040js reads mcu.flash directly).
const uid = Buffer.alloc(8);
if (args.uid) Buffer.from(args.uid.padStart(16, '0').slice(-16), 'hex').copy(uid);
const flash = {
  cs: false, cmd: -1, n: 0, addr: 0, wel: false, data: [],
  begin() { this.cs = true; this.cmd = -1; this.n = 0; this.addr = 0; this.data = []; },
  end() {
    if (!this.cs) return;
    this.cs = false;
    const c = this.cmd;
    const a = this.addr & (FLASH_SIZE - 1);
    const erase = { 0x20: 4096, 0x52: 32768, 0xd8: 65536 }[c];
    if (erase && this.n >= 4 && this.wel) {
      const base = a & ~(erase - 1);
      const done = erase * flashOp();
      mcu.flash.fill(0xff, base, base + done);
      persist(base, erase);
      this.wel = false;
    } else if ((c === 0xc7 || c === 0x60) && this.wel && flashOp() === 1) {
      mcu.flash.fill(0xff, 0, FLASH_SIZE);
      persist(0, FLASH_SIZE);
      this.wel = false;
    } else if (c === 0x02 && this.n > 4 && this.wel) {
      const page = a & ~0xff;
      const n = Math.floor(this.data.length * flashOp());
      for (let i = 0; i < n; i++) {
        const k = page + ((a + i) & 0xff); // wraps within the 256-byte page, as the chip does
        mcu.flash[k] &= this.data[i]; // programming only clears bits
      }
      persist(page, 256);
      this.wel = false;
    }
  },
  xfer(b) {
    if (!this.cs) return 0xff;
    const i = this.n++;
    if (i === 0) {
      this.cmd = b;
      if (b === 0x06) this.wel = true;
      else if (b === 0x04) this.wel = false;
      return 0;
    }
    const c = this.cmd;
    if (c === 0x05) return this.wel ? 2 : 0; // status 1: never busy (operations are instantaneous)
    if (c === 0x35) return 0x02; // status 2: QE set, so boot2 leaves it alone
    if (c === 0x9f) return [0xef, 0x40, 0x15][i - 1] ?? 0; // JEDEC ID: Winbond W25Q16JV
    if (c === 0x4b) return i >= 5 && i < 13 ? uid[i - 5] : 0; // unique ID after 4 dummy bytes
    if (c === 0x03 || c === 0x0b || c === 0x02 || c === 0x20 || c === 0x52 || c === 0xd8) {
      if (i <= 3) {
        this.addr = (this.addr << 8) | b;
        return 0;
      }
      if (c === 0x02) {
        if (this.data.length < 256) this.data.push(b);
        return 0;
      }
      const skip = c === 0x0b ? 5 : 4;
      if (i < skip) return 0;
      return mcu.flash[(this.addr + i - skip) & (FLASH_SIZE - 1)];
    }
    return 0;
  },
};

class SSI extends BasePeripheral {
  constructor(rp2040, name) {
    super(rp2040, name);
    this.regs = new Map();
    this.rx = [];
  }
  readUint32(off) {
    switch (off) {
      case 0x20: return 0; // TXFLR: every frame goes out at once
      case 0x24: return this.rx.length; // RXFLR
      case 0x28: return 0x06 | (this.rx.length ? 0x08 : 0); // SR: TFNF, TFE, RFNE; never busy
      case 0x58: return 0x51535049; // IDR
      case 0x5c: return 0x3430312a; // SSI_VERSION_ID
      case 0x60: return this.rx.length ? this.rx.shift() : 0; // DR0
    }
    return this.regs.get(off) ?? 0;
  }
  writeUint32(off, v) {
    if (off === 0x60) {
      // chip select driven by the SSI itself (boot2): it stays low while frames follow each other; boot2
      // drains the RX FIFO between commands, so a frame sent into an empty FIFO starts a new command
      if (!ioqspi.forced && !this.rx.length) { flash.end(); flash.begin(); }
      this.rx.push(flash.xfer(v & 0xff));
      if (this.rx.length > 16) this.rx.shift();
      return;
    }
    if (off === 0x08 && !(v & 1)) this.rx.length = 0; // disabling the SSI flushes its FIFOs
    this.regs.set(off, v);
  }
}
class IOQSPI extends BasePeripheral {
  constructor(rp2040, name) {
    super(rp2040, name);
    this.regs = new Map();
    this.forced = false;
  }
  readUint32(off) {
    return this.regs.get(off) ?? 0;
  }
  writeUint32(off, v) {
    this.regs.set(off, v);
    if (off === 0x0c) { // GPIO_QSPI_SS_CTRL: OUTOVER (bits 8-9) 0 = the SSI drives it, 2 = low, 3 = high
      const ov = (v >> 8) & 3;
      const was = this.forced;
      this.forced = ov !== 0;
      if (ov === 2 && !(was && flash.cs)) { flash.end(); flash.begin(); } else if (ov !== 2 && flash.cs) flash.end();
    }
  }
}
const ioqspi = new IOQSPI(mcu, 'IO_QSPI_BASE');
mcu.peripherals[0x18000] = new SSI(mcu, 'SSI');
mcu.peripherals[0x40018] = ioqspi;

// the board is reset by the watchdog (machine.reset(), a WDT timeout): tell the controller, which
// power-cycles this process (the flash file keeps the filesystem)
mcu.peripherals[0x40058].onWatchdogTrigger = () => { resetReason = 1; };

// USB CDC: the board's serial port
const cdc = new USBCDC(mcu.usbCtrl);
let cdcOut = [];
let cdcOutBytes = 0;
cdc.onSerialData = (buf) => { cdcOut.push(Buffer.from(buf)); cdcOutBytes += buf.length; };
let cdcIn = Buffer.alloc(0);
// rp2040js's CDC host answers every OUT buffer the device arms at once, with no bytes when it has none:
// the device re-arms it, and the USB interrupt then fires ~37 000 times a second, so the CPU never
// idles (4 host CPU-s per emulated second at an idle REPL). A USB host sends OUT data only when it has
// some: the armed buffer waits here until then.
let outArmed = 0; // the size of the OUT buffer the device has armed and no data has filled yet
function outData(size) {
  const buf = new Uint8Array(Math.min(size, cdc.txFIFO.itemCount));
  for (let i = 0; i < buf.length; i++) buf[i] = cdc.txFIFO.pull();
  mcu.usbCtrl.endpointReadDone(cdc.outEndpoint, buf);
}
mcu.usbCtrl.onEndpointRead = (endpoint, size) => {
  if (endpoint !== cdc.outEndpoint) return;
  if (cdc.txFIFO.itemCount) outData(size);
  else outArmed = size;
};
function feedCdc() {
  let k = 0;
  while (k < cdcIn.length && !cdc.txFIFO.full) cdc.sendSerialByte(cdcIn[k++]);
  if (k) cdcIn = cdcIn.subarray(k);
  if (outArmed && cdc.txFIFO.itemCount) {
    const size = outArmed;
    outArmed = 0;
    outData(size);
  }
}

// I2C: start, write byte and stop are reported and answered at once; connect (ACK or NACK of the
// address) and each read byte wait for the controller (emulation paused)
const i2c = mcu.i2c[Number(args.i2c ?? 0)];
const one = Buffer.alloc(1);
const two = Buffer.alloc(2);
i2c.onStart = (repeated) => { one[0] = repeated ? 1 : 0; send('S', one); i2c.completeStart(); };
i2c.onConnect = (addr, mode) => { two[0] = addr; two[1] = mode; i2c.completeConnect(ask('C', two, 'k')[0] === 1); };
i2c.onWriteByte = (v) => { one[0] = v; send('W', one); i2c.completeWrite(true); };
i2c.onReadByte = (ack) => { one[0] = ack ? 1 : 0; i2c.completeRead(ask('R', one, 'b')[0]); };
i2c.onStop = () => { send('P'); i2c.completeStop(); };

// ADC: each conversion asks the controller for its 12-bit code, then completes after the sample time
const adc = mcu.adc;
let adcValue = 0;
const adcDone = mcu.clock.createAlarm(() => adc.completeADCRead(adcValue, false));
adc.onADCRead = (ch) => {
  one[0] = ch;
  adcValue = ask('A', one, 'a').readUInt16LE(0) & 0xfff;
  adcDone.schedule(adc.sampleTime * 1000);
};

function gpioState() {
  let high = 0;
  let out = 0;
  for (let p = 0; p < 30; p++) {
    const s = mcu.gpio[p].value;
    if (s === GPIOPinState.High) { high |= 1 << p; out |= 1 << p; } else if (s === GPIOPinState.Low) out |= 1 << p;
  }
  return [high >>> 0, out >>> 0];
}

function runUntil(tns) {
  const { core, clock } = mcu;
  feedCdc();
  let fed = clock.nanos;
  while (clock.nanos < tns && !resetReason) {
    if (core.waiting) {
      const rem = tns - clock.nanos;
      const d = clock.nextAlarm ? clock.nanosToNextAlarm : rem;
      clock.tick(d < rem ? (d > 0 ? d : 0) : rem);
    } else {
      clock.tick(core.executeInstruction() * CYCLE_NS);
    }
    if (cdcIn.length && clock.nanos - fed > 100000) { feedCdc(); fed = clock.nanos; }
  }
}

mcu.core.PC = 0x10000000;
send('H', Buffer.from(JSON.stringify({ rp2040js: '1.4.1', flash: FLASH_SIZE, uf2_blocks: blocks })));
for (;;) {
  const [t, body] = recv();
  if (t === 'r') {
    runUntil(Number(body.readBigUInt64LE(0)));
    if (cdcOut.length) {
      const all = Buffer.concat(cdcOut);
      cdcOut = [];
      cdcOutBytes = 0;
      for (let k = 0; k < all.length; k += 60000) send('O', all.subarray(k, k + 60000));
    }
    if (resetReason) {
      // the controller power-cycles this process; until then it stays stopped
      one[0] = resetReason;
      send('X', one);
      for (;;) if (recv()[0] === 'q') process.exit(0);
    }
    const [high, out] = gpioState();
    const d = Buffer.alloc(20);
    d.writeBigUInt64LE(BigInt(Math.round(mcu.clock.nanos)), 0);
    d.writeUInt32LE(high, 8);
    d.writeUInt32LE(out, 12);
    d.writeUInt32LE(flashOps, 16);
    send('D', d);
  } else if (t === 'c') {
    cutIn = body.readUInt32LE(0);
  } else if (t === 'g') {
    // the levels other parts of the board drive on these pins (the AFE's ALERT on its pull-up):
    // what the pins read as inputs from now on
    const mask = body.readUInt32LE(0);
    const high = body.readUInt32LE(4);
    for (let p = 0; p < 30; p++) if (mask >> p & 1) mcu.gpio[p].setInputValue(!!(high >> p & 1));
  } else if (t === 's') {
    cdcIn = cdcIn.length ? Buffer.concat([cdcIn, body]) : body;
  } else if (t === 'q') {
    flush();
    process.exit(0);
  } else {
    die(`protocol: unknown command '${t}'`);
  }
}
