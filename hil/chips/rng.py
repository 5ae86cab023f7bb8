# A tiny deterministic PRNG for the simulated chips: xorshift32 (Marsaglia), integers only, so the
# chips give the same noise on CPython and MicroPython for the same seed.
_M32 = 0xFFFFFFFF
# standard deviation of the sum of four 16-bit uniforms: 65536 * sqrt(4/12)
_SD4 = 37837


class Rng:
    def __init__(self, seed=1):
        self.seed(seed)

    def seed(self, seed):
        self.x = (seed & _M32) or 0x9E3779B9  # xorshift has a fixed point at 0

    def next(self):
        x = self.x
        x ^= (x << 13) & _M32
        x ^= x >> 17
        x ^= (x << 5) & _M32
        self.x = x
        return x

    def below(self, n):
        """Uniform integer in 0..n-1 (n <= 2**16)."""
        return ((self.next() & 0xFFFF) * n) >> 16

    def gauss(self, sd):
        """Integer noise with standard deviation sd (same unit), bounded to about +-3.5 sd.

        The sum of four uniforms (Irwin-Hall) is close enough to a Gaussian for sensor noise.
        """
        if not sd:
            return 0
        s = -131072
        for _ in range(4):
            s += self.next() & 0xFFFF
        # round to nearest, symmetric around 0
        q = s * sd
        return (q + _SD4 // 2) // _SD4 if q >= 0 else -((-q + _SD4 // 2) // _SD4)

