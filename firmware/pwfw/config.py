# Configuration: defaults per chemistry, board overrides, validated changes.
# Values are plain int attributes (cfg.cell_ov_mv) so the per-sample code reads them without lookups
# in a dict or any allocation. The key table (defaults, ranges, units, the chemistries' hard limits)
# and the checks live in pwfw.config_keys, loaded for a change or a listing and dropped after it: the
# loop does not hold them (docs/architecture.md, Memory). A MemoryError while loading it propagates:
# the caller answers or flags it (pwfw.commands, App).
from pwfw.compat import MICROPYTHON, call, unload

if not MICROPYTHON:  # the host reads the one source of the keys here (packwatch.boardfile, tests)
    from pwfw.config_keys import (_BOARD_FIELDS, _ORDER, CAL_KEYS, CELLS_MAX, CELLS_MIN,  # noqa: F401
                                  CHEM_RANGES, CHEMISTRIES, KEYS, _row)


class Config:
    def __init__(self, board=None):
        # the hard limits ((key, lo, hi, why lo, why hi), ...: pwfw.limits) and the unlock key. On a
        # board they come with hard_limits(), which the Pack calls once the AFE set-up has loaded (and
        # interned the names of) the modules they need: loaded here they would take heap the HAL and
        # the simulated chips still need (pwfw.boot.check_board holds the board's limits to CHEM_RANGES)
        self._hard = ()
        self.unlock_key = None
        self.unlocked_at = None  # ticks of the last `unlock`, None while locked (pwfw.commands)
        self.bad_keys = 0  # wrong unlock keys in a row
        self.lockout_at = None  # ticks when the last lock-out began
        self._over = None  # overrides(), kept current by each change: a state save does not load config_keys
        self.gen = 0  # counts the changes applied: pwfw.protect copies its limits again only after one
        self._apply("init", board)  # chem, cells and every key's int attribute
        if not MICROPYTHON:
            self.hard_limits(board)

    def keys(self):
        return call("config_keys", "keys", self)

    def get(self, key):
        return call("config_keys", "get", self, key)

    def as_dict(self):
        return call("config_keys", "as_dict", self)

    def overrides(self):
        """Keys that differ from the chemistry defaults: what to persist. Worked out (pwfw.config_keys)
        when a value changes, not per save: App.save must fit beside a start-up's heap, where the key
        table (~10 KB on the unix port, ~6 KB on rp2) often does not (tests/t2 power-loss)."""
        return self._over

    def _apply(self, fn, *args):
        # pwfw.config_keys.<fn>(self, *args), then overrides() in the same load of the key table
        import sys

        held = "pwfw.config_keys" in sys.modules
        from pwfw import config_keys as k

        try:
            r = getattr(k, fn)(self, *args)
            self._over = k.overrides(self)  # not after a refused change: nothing was applied
            self.gen += 1
            return r
        finally:
            k = None
            if MICROPYTHON and not held:
                unload("config_keys")

    def set(self, key, value):
        self.update({key: value})

    def update(self, changes, apply=True):
        """Apply all of changes or none: ValueError names the first problem (apply=False: check only)."""
        if apply:
            self._apply("update", changes, True)
        else:
            call("config_keys", "update", self, changes, False)

    def hard_limits(self, board):
        """The chemistry's and the board's hard limits (pwfw.limits), the present values checked
        against them, and the unlock key: ValueError names the first problem."""
        call("config_keys", "hard_limits", self, board)

    def load_overrides(self, d):
        """Apply persisted overrides one by one, skipping bad ones (a newer/older firmware may differ).
        Returns the list of rejected keys; never raises on bad data."""
        return self._apply("load_overrides", d)

    def current_ma(self, raw_ma):
        """Calibrated current: (raw - offset) * (1 + gain_ppm / 1e6), integer-only without big ints
        (|raw| ≤ 2e6 mA and |gain| ≤ 2e5 ppm keep every product below 2**30)."""
        x = raw_ma - self.i_offset_ma
        g = self.i_gain_ppm
        if not g:
            return x
        a = x if x >= 0 else -x
        gg = g if g >= 0 else -g
        c = ((a // 1000) * gg + (a % 1000) * gg // 1000) // 1000
        if (x < 0) != (g < 0):
            c = -c
        return x + c
