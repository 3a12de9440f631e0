"""Rewrites the CUDA engine's sources (cuda/*.cu, *.h, *.cuh) into host C++ for the emulated test
run (scripts/cuda-emu-test.sh): every `kernel<<<grid, block, shmem, stream>>>(args)` becomes
`emu_launch(grid, [&]() { kernel(args); })`, which prelude.h runs block after block with one thread
per block. Usage: launch2host.py SRC_DIR OUT_DIR"""
import re, sys, os, glob
src_dir, out_dir = sys.argv[1], sys.argv[2]
ident = re.compile(r'[A-Za-z_][A-Za-z_0-9]*$')

def match_close(s, i, open_c, close_c):
    depth = 0
    while i < len(s):
        if s[i] == open_c: depth += 1
        elif s[i] == close_c:
            depth -= 1
            if depth == 0: return i
        i += 1
    raise ValueError('unbalanced')

def split_top(s):
    parts, depth, cur = [], 0, ''
    for ch in s:
        if ch in '([{': depth += 1
        if ch in ')]}': depth -= 1
        if ch == ',' and depth == 0:
            parts.append(cur); cur = ''
        else:
            cur += ch
    parts.append(cur)
    return [p.strip() for p in parts]

def transform(s):
    out = ''
    while True:
        i = s.find('<<<')
        if i < 0:
            return out + s
        # kernel name, possibly with template arguments
        j = i
        if s[j-1] == '>':
            # find matching '<'
            depth = 0; k = j - 1
            while True:
                if s[k] == '>': depth += 1
                elif s[k] == '<':
                    depth -= 1
                    if depth == 0: break
                k -= 1
            j = k
        k = j
        while k > 0 and (s[k-1].isalnum() or s[k-1] == '_'): k -= 1
        name = s[k:i]
        e = s.index('>>>', i)
        cfg = split_top(s[i+3:e])
        p0 = s.index('(', e)
        p1 = match_close(s, p0, '(', ')')
        args = s[p0+1:p1]
        out += s[:k] + 'emu_launch((%s), [&]() { %s(%s); })' % (cfg[0], name, args)
        s = s[p1+1:]

for f in glob.glob(os.path.join(src_dir, '*.cu')):
    t = transform(open(f).read())
    open(os.path.join(out_dir, os.path.basename(f)[:-3] + '.cpp'), 'w').write(t)
for f in glob.glob(os.path.join(src_dir, '*.h')) + glob.glob(os.path.join(src_dir, '*.cuh')):
    open(os.path.join(out_dir, os.path.basename(f)), 'w').write(transform(open(f).read()))
