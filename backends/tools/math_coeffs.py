#!/usr/bin/env python3
"""Regenerates the constants of backends/src/llvm/math.rs (needs mpmath): Cody-Waite splits of ln2 and pi/2,
and erfcx(x) = exp(x^2) erfc(x) interpolated at Chebyshev nodes as a polynomial in u = (2x-a-b)/(b-a)."""
import mpmath as mp
mp.mp.dps = 60
def cheb_fit(f, a, b, n, tr=None):
    # interpolate at Chebyshev nodes in variable v in [a,b]; return monomial coeffs in u=(2v-a-b)/(b-a)
    nodes = [mp.cos(mp.pi*(k+mp.mpf(1)/2)/(n+1)) for k in range(n+1)]
    vals = [f((b-a)/2*u+(a+b)/2) for u in nodes]
    A = mp.matrix([[u**j for j in range(n+1)] for u in nodes])
    c = mp.lu_solve(A, mp.matrix(vals))
    return [c[j] for j in range(n+1)]
def evalp(c, u):
    r = mp.mpf(0)
    for x in reversed(c): r = r*u + x
    return r
def rnd(v, bits):
    if v == 0: return mp.mpf(0)
    e = mp.floor(mp.log(abs(v),2))
    q = mp.mpf(2)**(e-bits+1)
    return mp.nint(v/q)*q
def split(v, bits, count, final):
    out=[]; rem=v
    for i in range(count-1):
        h = rnd(rem,bits); out.append(h); rem -= h
    out.append(rnd(rem, final)); return out
def check(f, a, b, c, N=600):
    m = 0
    for i in range(N + 1):
        v = a + (b - a) * mp.mpf(i) / N
        m = max(m, abs(evalp(c, (2 * v - a - b) / (b - a)) - f(v)) / abs(f(v)))
    return m
def show(name, parts):
    print("const %s: [f64; %d] = [%s];" % (name, len(parts), ", ".join(repr(float(p)) for p in parts)))
show("LN2_F32", split(mp.log(2), 16, 2, 24))
show("LN2_F64", split(mp.log(2), 42, 2, 53))
show("PIO2_F32", split(mp.pi / 2, 10, 4, 24))
show("PIO2_F64", split(mp.pi / 2, 23, 4, 53))
show("PIO2_HL_F32", split(mp.pi / 2, 24, 2, 24))
show("PIO2_HL_F64", split(mp.pi / 2, 53, 2, 53))
g = lambda x: mp.erfc(x) * mp.exp(x * x)
for name, a, b, n in [("ERFCX_F32", 1, 4, 12), ("ERFCX_F64", 1, 6, 26)]:
    c = cheb_fit(g, a, b, n)
    print("// %s: max rel err of erfcx fit on [%d, %d]: %s" % (name, a, b, mp.nstr(check(g, a, b, c), 3)))
    show(name, c)
