"""Virtual time: the plant steps only when the firmware asks (lockstep), or in real-time mode when
the wall clock has caught up; scenario events, holds, power cuts and the truth rows tests compare with.

The plant pipe (hal_sim, or the emulated RP2040's bridge, ↔ this side), little-endian: a request
of 17 bytes `<cIIiI` = (b'S', t_ms, outputs: bit0 relay, bit1 AFE CHG FET on, bit2 AFE DSG FET on;
cut_us: us into the previous step when an AFE FET opened, -1 none; bal: cell mask being balanced),
or b'R' + 16 bytes (the board asks to be reset), or b'W' + 16 (its supply is back: a power-on); a
reply `<H` length + `<IiiIHBB` (t_ms, i_ma at the step's end, i_avg_ma the step's mean, stack in
0.1 mV, flags: bit 3 a charger at LD, bits 15, 0-2 and 8-14 see _speculate; n_cells, n_temps) + n_cells × `<H` cell
voltage in 0.1 mV + n_temps × `<h` 0.1 °C + `B` fault count + faults as `<BBh` (hil/faults.py).
docs/architecture.md has the same layout.
"""
import os
import random
import struct
import time

from hil.faults import CODES as CHIP_FAULTS
from hil.plant import Plant

_SPEC_DEPTH = 8  # steps computed ahead of the firmware (see _speculate)
_SPEC_WRITE = 4  # replies sent ahead in one write (hal_sim sends its requests of those in batches too)
_HIST = 48  # the firmware's step lengths kept to find the cycle they repeat (see _predict)
_REQ = struct.Struct("<cIIiI")  # kind, t_ms, outputs, cut_us, bal (hal_sim._step)
_LD_CHARGER = 0x0008  # reply flags bit 3: a charger at PACK+/LD (wakes the AFE from SHUTDOWN)


def _plain_profile(profile):
    """Profiles whose state Plant.snapshot() can copy: none, or a Mix of hil.profiles parts."""
    from hil import profiles

    if profile is None:
        return True
    if type(profile) is not profiles.Mix:
        return False
    return all(type(q).__module__ == profiles.__name__ for q in profile.loads + profile.chargers)


class Lockstep:
    """The plant and virtual time (a part of VirtualBoard: it shares the instance)."""

    def _init_lockstep(self, realtime, speed, truth_every_ms, pipeline):
        self.realtime = realtime
        self.speed = speed
        # the board file's balancing path sets the plant's bleed current (one source: limits.bal_r_ohm, bal_rsw_ohm)
        lim = self.board.get("limits") or {}
        self.plant = self.scenario.make_plant(self.seed, lim.get("bal_r_ohm"), lim.get("bal_rsw_ohm"))
        self.truth_every_ms = truth_every_ms
        # (t_ms, i_ma, stack_mv10, [cells_mv10], [temps_dc], [soc], relay_closed, fw_ms, boot, pack_soc,
        # path, i_avg_ma, bal) rows for tests and `packwatch sim --truth` (packwatch.truth); fw_ms = the
        # firmware's clock (ticks_ms, wrapping at 2**30: the `ms` of a report sampled at that step),
        # boot = self.boots, path = Plant.path (bit 0 relay, 1 CHG, 2 DSG as that step had them);
        # i_ma is the current at the step's end, i_avg_ma its mean; bal = the cells bled in that step
        # (bit k = cell k; each cell's bled charge so far is plant.bled_as)
        self.truth = []
        self._hold = None  # hold_at_ms
        self._pending = None  # a step request waiting for wall time or for the hold to lift
        self._rng = random.Random(self.seed)
        self._kill_at = None
        self._kills = []  # further power cuts waiting behind _kill_at (wall-clock times)
        self._last_truth = -1
        self._t_prev = 0
        self._wall0 = None
        self._vt0 = 0
        self._specq = []  # steps computed ahead while the firmware works, oldest first: see _speculate
        # pipeline=False: strict lockstep (the plant never steps ahead; for comparisons)
        self._spec_ok = pipeline and type(self.plant) is Plant and _plain_profile(self.plant.profile)
        self.spec_hits = 0
        self.spec_misses = 0
        self._structs = {}

    @property
    def t_ms(self):
        """Virtual time the firmware has reached (the plant may be a few steps ahead, speculatively)."""
        try:
            return self._specq[0][2][0]  # the plant's time before the oldest step not yet taken
        except IndexError:  # none (or the runner thread just took it)
            return self.plant.t_ms

    @property
    def hold_at_ms(self):
        """Freeze virtual time here (tests): the firmware waits at its first step past it."""
        return self._hold

    @hold_at_ms.setter
    def hold_at_ms(self, t):
        # virtual time cannot stop before the plant: replies already sent ahead cannot be taken back
        # (the firmware takes them), so a hold before the last one's end is there, where the firmware
        # will stand still (and so is one before a step the runner took while the caller read t_ms)
        with self._lock:
            if t is not None:
                t = max(t, self.plant.t_ms)
            self._hold = t

    @property
    def held(self):
        """True while the firmware waits at hold_at_ms for its next step: virtual time stands still, so
        a test can act at a defined virtual time however late its own thread runs."""
        with self._lock:
            return (self._hold is not None and self._pending is not None and self._t_fw0 is not None
                    and self._vt0 + (self._pending[0] - self._t_fw0) > self._hold)

    def power_loss_in(self, wall_s):
        """Cut power after `wall_s` seconds of wall time, wherever the firmware is by then."""
        t = time.monotonic() + wall_s
        if self._kill_at is not None:  # one still pending: it comes first, then this one (never merged)
            self._kills.append(t)
        else:
            self._kill_at = t

    def _new_boot(self, req_r, rep_w):
        """A board process has started with this plant pipe: its virtual clock starts at 0."""
        self._req_r, self._rep_w = req_r, rep_w
        self._reqbuf = bytearray()
        self._pending = None
        self._wall0 = time.monotonic()
        self._vt0 = self.plant.t_ms
        self._t_fw0 = None  # firmware's virtual clock restarts at 0 on every boot
        self._hist = []  # its step lengths so far (see _predict)
        self._cycle = 0

    # --- requests -------------------------------------------------------------------------------
    def _read_requests(self):
        try:
            data = os.read(self._req_r, 4096)
        except OSError:
            data = b""
        if not data:
            self._house = 0.0  # end of file: the firmware is gone; housekeeping restarts it
            return
        self._reqbuf += data
        self._parse_requests()

    def _parse_requests(self):
        n = _REQ.size
        while len(self._reqbuf) >= n and self._pending is None:
            kind, t_ms, outputs, cut_us, bal = _REQ.unpack_from(self._reqbuf)
            del self._reqbuf[:n]
            if kind in (b"R", b"W"):  # reset, or (W) the board's supply came back: power-on
                self._kill()
                self._cause_next = "soft" if kind == b"R" else "power"
                self._spawn()
                return
            self._pending = (t_ms, outputs, cut_us, bal)

    def _pending_due(self):
        """Seconds until the pending step may be answered (<= 0: now)."""
        t_ms = self._pending[0]
        if self._t_fw0 is None:
            return 0.0
        vt = self._vt0 + (t_ms - self._t_fw0)
        if self._hold is not None and vt > self._hold:
            return 0.02  # frozen: check again soon
        if not self.realtime:
            return 0.0
        return self._wall0 + (vt - self._vt0) / 1000.0 / self.speed - time.monotonic()

    def _serve(self):
        # the firmware may already have asked for the next step (it took a reply sent ahead):
        # requests can wait in _reqbuf, where poll() does not see them
        self._parse_requests()
        while self._pending is not None and self._pending_due() <= 0:
            self._answer(*self._pending)
            self._parse_requests()
        if self._pending is not None and self._specq and not self._spec_taken(*self._pending):
            # held at a step other than the one computed ahead (the firmware woke early, or an ALERT
            # sample): undo those steps now, not when the hold lifts, so the plant stands where the
            # firmware is while a test looks at it
            self.spec_misses += 1
            self._unspec()

    # --- stepping the plant ---------------------------------------------------------------------
    # Pipelining: the firmware (one core) and the plant (this thread, the other core) run in
    # lockstep, but the runner computes the next steps ahead, assuming the firmware asks for the same
    # step length with the same relay state (it samples on a fixed period, and the relay rarely
    # moves), and sends those replies ahead, marked speculative (flags bit 15, bits 0-2 = the relay and
    # FET outputs assumed; no FET cut, the same balancing mask); up to _SPEC_DEPTH of them, so a slow moment on this side (the host thread, a thermal
    # step) does not stall the firmware. hal_sim takes a reply if its request is that step, else drops
    # it; the runner, seeing a request that does not match the oldest step ahead, undoes all of them
    # (Plant.snapshot/restore) and answers as asked. The plant's trajectory is exactly the lockstep
    # one (tests/t2/test_vboard_lockstep.py). No speculation across scenario events, holds, pending
    # power cuts, or in real-time mode. Fewer wake-ups: the replies go _SPEC_WRITE to a write (flags
    # bits 8-14: how many more that write holds), and hal_sim sends the requests of the steps it took
    # from them in batches (hal_sim._BATCH), so this side wakes about once per four steps; it learns of
    # the firmware's steps that much later (t_ms), never later than a line the firmware sends.
    # (t_ms, outputs, dt, bal, j): the step after the last one answered or computed ahead, j steps
    # after the last one the firmware took
    _next = None
    _hist = ()  # the lengths (ms) of the firmware's last steps, newest last (see _predict)
    _cycle = 0  # the length of the cycle they repeat, 0 = none found

    def _answer(self, t_ms, outputs, cut_us=-1, bal=0):
        self._pending = None
        q = self._specq
        if q:
            sp = q[0]
            if self._spec_taken(t_ms, outputs, cut_us, bal):
                del q[0]
                self.spec_hits += 1  # the firmware has taken the reply we sent ahead
                self._learn(sp[3])
                if self._next is not None:  # one step fewer ahead of what the firmware took
                    self._next = self._next[:4] + (self._next[4] - 1,)
                self._record(sp[4])
                return
            self.spec_misses += 1
            self._unspec()
        if self._t_fw0 is None:
            self._t_fw0 = t_ms  # first request after a boot: align the firmware's clock to the plant's
        target = self._vt0 + (t_ms - self._t_fw0)
        plant = self.plant
        dt = target - plant.t_ms
        faults = []
        if dt > 0:
            for te, kind, args in self.scenario.events_between(plant.t_ms, target):
                self._event(kind, args, faults)
        if dt > 0 or cut_us >= 0:  # a cut is accounted even by a 0 ms step
            plant.step(max(dt, 0), bool(outputs & 1), bool(outputs & 2), bool(outputs & 4), cut_us, bal)
        try:
            os.write(self._rep_w, self._reply(t_ms, faults))
        except OSError:
            pass  # the firmware died between its request and our answer; the loop restarts it
        self._record(self._truth_row(t_ms))
        if dt > 0:
            self._learn(dt)
            d = self._predict(0)
            self._next = ((t_ms + d) & 0xFFFFFFFF, outputs, d, bal, 0)
        else:
            self._next = None

    def _spec_taken(self, t_ms, outputs, cut_us, bal):
        """The request is the oldest step computed ahead (the firmware took the reply sent ahead)."""
        sp = self._specq[0]
        return sp[0] == t_ms and sp[1] == outputs and cut_us < 0 and sp[5] == bal

    def _learn(self, dt):
        """One more step the firmware took, dt ms long, into the history _predict reads."""
        h = self._hist
        h.append(dt)
        if len(h) > _HIST:
            del h[0]
        n = self._cycle
        if n and len(h) > n and h[-1] == h[-1 - n]:
            return  # the cycle goes on
        self._cycle = 0
        for n in range(1, len(h) // 2 + 1):  # the shortest cycle the last steps repeat
            if h[-n:] == h[-2 * n:-n]:
                self._cycle = n
                return

    def _predict(self, j):
        """The length of the firmware's step j steps after the last one it took. It samples on a fixed
        period, but not always in one step: once a second the driver waits 1 ms for a subcommand's
        answer (DASTATUS6) and the firmware then sleeps the rest of the period, so its steps repeat
        100 x 9, 1, 99. The cycle its last steps repeat, continued; without one, the last step again."""
        h = self._hist
        n = self._cycle
        return h[len(h) - n + j % n] if n else h[-1]

    def _truth_row(self, fw_ms):
        plant = self.plant
        # built only when _record may keep it (_last_truth only lags behind speculative steps)
        if not self.truth_every_ms or plant.t_ms - self._last_truth < self.truth_every_ms:
            return None
        return (plant.t_ms, int(plant.i_ma), int(plant.stack_mv10), plant.cells_mv10.tolist(),
                plant.temps_dc.tolist(), plant.soc.tolist(), bool(plant.relay_closed), fw_ms & 0x3FFFFFFF,
                self.boots, float(plant.pack_soc), plant.path, int(plant.i_avg_ma), plant.bal_mask)

    def _record(self, row):
        """Keep the truth after a step the firmware has taken (tests compare telemetry with it)."""
        if row is not None and row[0] - self._last_truth >= self.truth_every_ms:
            self._last_truth = row[0]
            self.truth.append(row)

    def _speculate(self):
        t_next, outputs, dt, bal, j = self._next
        plant = self.plant
        t0 = plant.t_ms
        if (not self._spec_ok or self.realtime or self._kill_at is not None or self._rep_w is None
                or (self._hold is not None and t0 + dt > self._hold)
                or self.scenario.events_between(t0, t0 + dt)):
            self._next = None
            return None
        snap = plant.snapshot()
        plant.step(dt, bool(outputs & 1), bool(outputs & 2), bool(outputs & 4), -1, bal)
        self._specq.append((t_next & 0xFFFFFFFF, outputs, snap, dt, self._truth_row(t_next), bal))
        d = self._predict(j + 1)
        self._next = ((t_next + d) & 0xFFFFFFFF, outputs, d, bal, j + 1)
        # flags bit 15 = speculative, bits 0-2 = the outputs assumed (_send_ahead adds bits 8-14)
        return self._reply(t_next, (), 0x8000 | (outputs & 7))

    def _run_ahead(self):
        """Compute steps ahead up to _SPEC_DEPTH, their replies sent _SPEC_WRITE to a write."""
        out = []
        q = self._specq
        while len(q) < _SPEC_DEPTH and self._next is not None:
            r = self._speculate()
            if r is None:
                break
            out.append(r)
            if len(out) == _SPEC_WRITE:
                self._send_ahead(out)
                out = []
        if out:
            self._send_ahead(out)

    def _send_ahead(self, replies):
        """One write (atomic: < PIPE_BUF), each reply telling in flags bits 8-14 how many more it
        holds: hal_sim reads those without waiting, so it sends its held requests only before the
        last one's successor (see hal_sim._BATCH)."""
        buf = bytearray(b"".join(replies))
        n = len(replies)
        o = 0
        for k in range(n):
            buf[o + 19] |= n - 1 - k
            o += len(replies[k])
        try:
            os.write(self._rep_w, buf)
        except OSError:
            pass

    def _unspec(self):
        """Undo every step computed ahead (the plant goes back to where the firmware is)."""
        q = self._specq
        if q:
            self.plant.restore(q[0][2])
            q.clear()
        self._next = None

    def _reply(self, t_ms, faults, flags=0):
        """The step reply: <H length, then t_ms, i_ma, i_avg_ma, stack, flags, n_cells, n_temps, cells,
        temps, faults (hal_sim.py reads it)."""
        cells, temps, i_ma, stack, i_avg = self.plant.reply_fields()
        if self._ld_charger():
            flags |= _LD_CHARGER
        nc, nt, nf = len(cells), len(temps), len(faults)
        st = self._structs.get((nc, nt))
        if st is None:
            st = self._structs[(nc, nt)] = struct.Struct("<HIiiIHBB%dH%dhB" % (nc, nt))
        n = st.size - 2 + 4 * nf
        out = st.pack(n, t_ms & 0xFFFFFFFF, i_ma, i_avg, stack, flags, nc, nt, *cells, *temps, nf)
        if nf:
            out += b"".join(struct.pack("<BBh", *f) for f in faults)
        return out

    def _ld_charger(self):
        """A charger is connected at PACK+/LD (active, not given up), whether or not the path lets it
        charge: its voltage there is what wakes a BQ76952 from SHUTDOWN (hal_sim._dark)."""
        prof = self.plant.profile
        t_s = self.plant.t_ms / 1000.0
        for c in getattr(prof, "chargers", ()):
            if not c.done and c.active(t_s):
                return True
        return False

    def _event(self, kind, args, faults):
        if self.scenario.apply_plant_event(self.plant, kind, args):
            return
        if kind in CHIP_FAULTS:
            a, b = (args + (0, 0))[:2] if len(args) >= 2 else (0, args[0] if args else 0)
            faults.append((CHIP_FAULTS[kind], a, b))
        elif kind == "power_loss":
            self.power_loss_in(self._rng.uniform(0.0, 0.01))
        elif kind == "serial_garbage":
            n = args[0] if args else 64
            junk = bytes(self._rng.randrange(256) for _ in range(n)).replace(b"\x03", b"\x00")
            self.inject_serial(junk, "device")
            self.inject_serial(junk, "host")
        elif kind == "unplug":
            self.unplug()
        elif kind == "replug":
            self.replug()

    # --- conveniences for tests and the CLI -------------------------------------------------------
    def wait_t(self, t_ms, timeout=60.0):
        """Block until virtual time reaches t_ms (or fail with the firmware's last output)."""
        end = time.monotonic() + timeout
        while self.plant.t_ms < t_ms:
            if self.error:
                raise RuntimeError("virtual board loop failed: %r" % self.error)
            if time.monotonic() > end:
                raise TimeoutError("virtual time stuck at %d ms; firmware said:\n%s"
                                   % (self.plant.t_ms, self.console[-2000:].decode("utf-8", "replace")))
            time.sleep(0.005)
