"""The reference for the cost benchmark: a straightforward float EKF, 3 states (SoC, RC voltage,
hysteresis), one cell, written the way it usually is. Runs on MicroPython and CPython."""


class NaiveEkf:
    def __init__(self, soc_pct, ocv_v, r0, r1, tau1, cap_ah, gamma=40.0, hmax=0.01):
        self.xs = [x / 100.0 for x in soc_pct]
        self.ys = list(ocv_v)
        self.r0, self.r1, self.tau1 = r0, r1, tau1
        self.q = cap_ah * 3600.0
        self.gamma, self.hmax = gamma, hmax
        self.x = [0.5, 0.0, 0.0]
        self.P = [[0.01, 0, 0], [0, 1e-4, 0], [0, 0, 0.25]]
        self.Q = [1e-9, 1e-8, 1e-6]
        self.R = 25e-6

    def ocv(self, s):
        xs, ys = self.xs, self.ys
        for j in range(1, len(xs)):
            if s <= xs[j] or j == len(xs) - 1:
                d = (ys[j] - ys[j - 1]) / (xs[j] - xs[j - 1])
                return ys[j - 1] + d * (s - xs[j - 1]), d
        return ys[-1], 0.0

    def step(self, dt, i, v):
        import math
        x, P = self.x, self.P
        a = math.exp(-dt / self.tau1)
        ds = i * dt / self.q
        eh = math.exp(-abs(ds) * self.gamma)
        sgn = 1.0 if i > 0 else (-1.0 if i < 0 else 0.0)
        x = [x[0] + ds, a * x[1] + (1 - a) * self.r1 * i, eh * x[2] + (1 - eh) * sgn]
        F = [[1.0, 0, 0], [0, a, 0], [0, 0, eh]]
        FP = [[sum(F[r][k] * P[k][c] for k in range(3)) for c in range(3)] for r in range(3)]
        P = [[sum(FP[r][k] * F[c][k] for k in range(3)) + (self.Q[r] if r == c else 0.0)
              for c in range(3)] for r in range(3)]
        o, d = self.ocv(x[0])
        H = [d, 1.0, self.hmax]
        yhat = o + x[1] + self.hmax * x[2] + self.r0 * i
        PH = [sum(P[r][k] * H[k] for k in range(3)) for r in range(3)]
        S = sum(H[k] * PH[k] for k in range(3)) + self.R
        K = [PH[r] / S for r in range(3)]
        e = v - yhat
        self.x = [x[r] + K[r] * e for r in range(3)]
        self.P = [[P[r][c] - K[r] * PH[c] for c in range(3)] for r in range(3)]
        return self.x[0]
