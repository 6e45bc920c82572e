/*
 * The masking prefilter's scan (src/policy/masking/prefilter.ts) in C, returning the same flags
 * for the same bytes (a differential test holds them together); JavaScript keeps the reference
 * implementation and is the fallback when this addon is not built.
 *
 * Two scans: on x86-64 with AVX2, scan_simd (Teddy for the anchors, a byte classification for
 * `@`, `%` and digit runs, 32 bytes a step); otherwise, and for short values, scan_skip (the
 * JavaScript's Wu–Manber walk over 2-byte blocks, on the tables built in JavaScript and copied
 * here). Both use the same digit-run, date and carry rules.
 *
 * It exists for speed: the relay scans every byte a masked session returns. Calls are per value,
 * per DataRow body (the cells walked here, their flags written to a shared Int32Array), per COPY
 * line, or per read: every DataRow or CopyData message that follows in the chunk, in one call.
 */
#include <node_api.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
/* The SIMD scan uses GCC/Clang target attributes and builtins: x86-64 with GCC or Clang only. */
#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define HAVE_SIMD 1
#endif

enum { BLOCK_ANCHOR = 1 << 2, BLOCK_DIGIT = 2 << 2, BLOCK_AT = 4 << 2, BLOCK_PERCENT = 8 << 2 };
enum { SLOT_BITS = 16, MAX_GAP = 2 };
/* Per column in the io array: mask, digit limit, digit flags, always. */
enum { SPEC_WIDTH = 4 };
/* Byte classes of the SIMD scan (see Scanner.classes). */
enum { CLASS_SEPARATOR = 1, CLASS_DIGIT = 2, CLASS_AT = 4, CLASS_PERCENT = 8 };
/* Teddy's buckets: two lanes of 8. */
enum { BUCKETS = 16 };
/* Anchors above which Teddy goes fat: the canary alone has a few dozen at most. */
enum { FAT_ABOVE = 40 };

static uint8_t FOLD[256];
/* 1 digit, 2 separator (` -.()/+`), 0 other. */
static uint8_t DIGIT_CLASS[256];
/* 1 for a lower-case ASCII letter or `_`. */
static uint8_t GLUE[256];

typedef struct {
  uint8_t with_digits[1 << 16];
  uint8_t without_digits[1 << 16];
  uint32_t slots[(1 << SLOT_BITS) >> 5];
  /* Open addressing, 0 = empty; the flags of the anchor 0 (four NUL bytes) apart. */
  uint32_t *keys;
  int32_t *values;
  int32_t zero_flags;
  uint32_t capacity_mask;
  int32_t at_sign, percent, across;
  /*
   * Teddy (Hyperscan's SIMD literal matcher), "fat" (16 buckets): per byte of an anchor, two
   * 32-byte tables (low and high nibble; the first 16 bytes for buckets 0-7, the next 16 for 8-15);
   * a window whose four bytes are in a common bucket is a candidate, then looked up whole.
   */
  uint8_t teddy[4][2][32];
  /* 16 buckets (two lookups per 32 positions) for many anchors; 8 (one, both lanes alike) for few. */
  int fat;
  /*
   * Byte classes by nibble lookup, as Teddy does: 1 separator (space ( ) + - . /), 2 digit, 4 `@`,
   * 8 `%` (when looked for); the AND of the low- and high-nibble entries (both lanes alike).
   */
  uint8_t classes[2][32];
  /* 0 the scalar scan, 1 AVX2, 2 AVX-512 (see create). */
  int simd;
  /* The bytes carried from one cell of a row to the next: the last three, folded. */
  uint32_t carry_window;
  int32_t carry_length;
  /* Shared with JavaScript: column specs in, cell flags out. */
  napi_ref io_ref;
  int32_t *io;
  size_t io_length;
} Scanner;

static inline uint32_t slot_of(uint32_t key) { return (uint32_t)(key * 0x9e3779b1u) >> (32 - SLOT_BITS); }

static inline int32_t lookup(const Scanner *s, uint32_t key) {
  uint32_t slot = slot_of(key);
  if ((s->slots[slot >> 5] & (1u << (slot & 31))) == 0) return 0;
  if (key == 0) return s->zero_flags;
  for (uint32_t at = slot & s->capacity_mask;; at = (at + 1) & s->capacity_mask) {
    uint32_t found = s->keys[at];
    if (found == key) return s->values[at];
    if (found == 0) return 0;
  }
}

static int is_date_time(const uint8_t *b, int start, int end) {
  int at = start;
  /* A `+` before the digits is an international prefix: no date. */
  for (; at < end && DIGIT_CLASS[b[at]] == 2; at++)
    if (b[at] == 0x2b) return 0;
#define DIGITS(count)                                                  \
  do {                                                                 \
    if (at + (count) > end) return 0;                                  \
    for (int k = 0; k < (count); k++)                                  \
      if (DIGIT_CLASS[b[at + k]] != 1) return 0;                       \
    at += (count);                                                     \
  } while (0)
  DIGITS(4);
  if (at >= end || b[at++] != 0x2d) return 0;
  DIGITS(2);
  if (at >= end || b[at++] != 0x2d) return 0;
  DIGITS(2);
  if (at < end && (b[at] == 0x20 || b[at] == 0x54) && at + 3 <= end) {
    at++;
    DIGITS(2);
  }
#undef DIGITS
  return at == end;
}

/* See digitRunEnd in prefilter.ts: -1 when the run around `at` raises, else where it ends. */
static int digit_run_end(const uint8_t *b, int from, int to, int at, int limit) {
  int start = at;
  while (start > from && DIGIT_CLASS[b[start - 1]] != 0) start--;
  int end = at;
  while (end < to && DIGIT_CLASS[b[end]] != 0) end++;
  int first = start;
  if (start > from && GLUE[b[start - 1]])
    while (first < end && DIGIT_CLASS[b[first]] == 1) first++;
  int last = end;
  if (end < to && GLUE[b[end]])
    while (last > first && DIGIT_CLASS[b[last - 1]] == 1) last--;
  int run = 0, most = 0, gap = 0;
  for (int j = first; j < last; j++) {
    if (DIGIT_CLASS[b[j]] == 1) {
      gap = 0;
      if (++run > most) most = run;
    } else if (++gap > MAX_GAP) {
      run = 0;
    }
  }
  return most >= limit && !is_date_time(b, start, end) ? -1 : end;
}

static int32_t straddle(const Scanner *s, const uint8_t *b, int from, int to) {
  uint32_t window = s->carry_window;
  int known = s->carry_length;
  int32_t flags = 0;
  for (int j = from; j < from + 3 && j < to; j++) {
    window = (window << 8) | FOLD[b[j]];
    if (++known >= 4) flags |= lookup(s, window);
  }
  return flags & s->across;
}

static void advance(Scanner *s, const uint8_t *b, int from, int to) {
  uint32_t window = s->carry_window;
  for (int j = to - from > 3 ? to - 3 : from; j < to; j++) window = (window << 8) | FOLD[b[j]];
  s->carry_window = window & 0xffffff;
  int length = s->carry_length + to - from;
  s->carry_length = length < 3 ? length : 3;
}

/* The Wu–Manber walk of Prefilter.scan over bytes [from, to) (short values, or no SIMD). */
static int32_t scan_skip(const Scanner *s, const uint8_t *b, int from, int to, int limit, int32_t digit_flags) {
  const uint8_t *table = digit_flags == 0 ? s->without_digits : s->with_digits;
  int32_t flags = 0;
  int digits_done = -1;
  int i = from + 1;
  while (i < to) {
    uint8_t entry = table[(b[i - 1] << 8) | b[i]];
    if (entry & 3) {
      i += entry & 3;
      continue;
    }
    if ((entry & BLOCK_ANCHOR) && i >= from + 3) {
      uint32_t key = ((uint32_t)FOLD[b[i - 3]] << 24) | ((uint32_t)FOLD[b[i - 2]] << 16) | ((uint32_t)FOLD[b[i - 1]] << 8) | FOLD[b[i]];
      flags |= lookup(s, key);
    }
    if ((entry & BLOCK_DIGIT) && i > digits_done) {
      digits_done = digit_run_end(b, from, to, i, limit);
      if (digits_done < 0) {
        flags |= digit_flags;
        digits_done = to;
      }
    }
    if (entry & BLOCK_AT) flags |= s->at_sign;
    if (entry & BLOCK_PERCENT) flags |= s->percent;
    i++;
  }
  if (to - from >= 2) {
    uint8_t entry = table[(b[to - 2] << 8) | b[to - 1]];
    if (entry & BLOCK_AT) flags |= s->at_sign;
    if (entry & BLOCK_PERCENT) flags |= s->percent;
  } else if (to - from == 1) {
    if (b[from] == 0x40) flags |= s->at_sign;
    if (b[from] == 0x25) flags |= s->percent;
  }
  return flags;
}

static inline uint32_t fold4(const uint8_t *p) {
  return ((uint32_t)FOLD[p[0]] << 24) | ((uint32_t)FOLD[p[1]] << 16) | ((uint32_t)FOLD[p[2]] << 8) | FOLD[p[3]];
}

#ifdef HAVE_SIMD
/* What both SIMD digit scans keep of a value: its bounds, the limit, and the runs counted so far. */
typedef struct {
  int from, to, limit;
  int power; /* the largest power of two not above limit */
  int32_t digit_flags;
  int on; /* still looking: digit_flags set, limit in [1, 32], nothing raised yet */
  int digits_done; /* where the last run counted exactly (or let go) ends */
} Runs;

static inline void runs_start(Runs *r, int from, int to, int limit, int32_t digit_flags) {
  r->from = from;
  r->to = to;
  r->limit = limit;
  r->digit_flags = digit_flags;
  r->on = digit_flags != 0 && limit >= 1 && limit <= 32;
  r->power = 1;
  while (r->on && r->power * 2 <= limit) r->power <<= 1;
  r->digits_done = -1;
}

/* Counts the run around byte `at` exactly (digit_run_end); digit_flags when it raises (and looks no further). */
static inline int32_t runs_count(Runs *r, const uint8_t *b, int at) {
  if (at <= r->digits_done) return 0;
  r->digits_done = digit_run_end(b, r->from, r->to, at, r->limit);
  if (r->digits_done >= 0) return 0;
  r->on = 0;
  return r->digit_flags;
}

/*
 * The digit-run part of the AVX2 scan, 32 bytes at a time: which runs of digits and separators
 * may hold `limit` digits, each such run then counted exactly (runs_count).
 */
typedef struct {
  Runs runs;
  uint64_t previous, previous_numerals; /* the classes and digits of the previous 32 bytes */
  int deferred; /* a run reached the end of the previous 32 bytes and is counted from here */
} Digits;

/*
 * The 32 bytes at k (k < to): `classes` has bit j set when byte k + j is a digit or a separator,
 * `numerals` when it is a digit (bits past `to` may be set; they are cleared here). Returns
 * digit_flags once a run raises (and looks no further), else 0.
 */
__attribute__((target("popcnt,bmi"))) static inline int32_t digits_step(Digits *d, const uint8_t *b, int k, uint64_t classes, uint64_t numerals) {
  Runs *r = &d->runs;
  const int from = r->from, to = r->to, limit = r->limit;
  if (numerals == 0 && !d->deferred) {
    /*
     * No digit here, and no run waiting from the bytes before: these 32 bytes are taken as
     * outside every run. A run through them would be separators only (more than MAX_GAP in a
     * row: digit_run_end never counts across), and one ending in them without `limit` digits
     * before cannot raise; one starting in them is seen from the next step (digit_run_end
     * finds its true start).
     */
    d->previous = 0;
    d->previous_numerals = 0;
    return 0;
  }
  if (k <= r->digits_done - 32) {
    d->previous = 0xffffffffull; /* inside a run already counted: any run end here is at or before digits_done */
    d->previous_numerals = 0;
    return 0;
  }
  d->deferred = 0;
  if (to - k < 32) {
    classes &= (1ull << (to - k)) - 1;
    numerals &= (1ull << (to - k)) - 1;
  }
  /* Bit j of `window`: byte k - 32 + j. Runs of at least `power` end where `runs` is set. */
  uint64_t window = (classes << 32) | d->previous;
  uint64_t runs = window;
  for (int have = 1; have < r->power; have <<= 1) runs &= runs << have;
  uint64_t ends = (runs & (runs << (limit - r->power))) >> 32;
  if (ends != 0) {
    uint64_t counted = (numerals << 32) | d->previous_numerals;
    uint64_t gaps = ~window;
    while (ends != 0) {
      int bit = 32 + __builtin_ctzll(ends);
      int at = k - 32 + bit;
      ends &= ends - 1;
      if (at <= r->digits_done) continue;
      uint64_t after = gaps & (~0ull << bit);
      uint64_t before = gaps & ((1ull << bit) - 1);
      /* Where the run stops (64: at the window's end); one going on into the next bytes is left to the next step. */
      int stop = after != 0 ? __builtin_ctzll(after) : 64;
      if (stop == 64 && k + 32 < to && DIGIT_CLASS[b[k + 32]] != 0) {
        d->deferred = 1;
        break;
      }
      if (before != 0) {
        int start = 64 - __builtin_clzll(before);
        uint64_t run = (stop == 64 ? ~0ull : (1ull << stop) - 1) & ~((1ull << start) - 1);
        /* Too few digits; or digits alone touching a lower-case letter (`ref ec9b086079795c44`), see digit_run_end. */
        int first = k - 32 + start, end = k - 32 + stop;
        int glued = (counted & run) == run && ((first > from && GLUE[b[first - 1]]) || (end < to && GLUE[b[end]]));
        if (glued || __builtin_popcountll(counted & run) < limit) {
          r->digits_done = end;
          ends &= stop >= 63 ? 0 : ~0ull << (stop - 31); /* the rest of this run's ends */
          continue;
        }
      }
      int32_t raised = runs_count(r, b, at);
      if (raised != 0) return raised;
    }
  }
  d->previous = classes;
  d->previous_numerals = numerals;
  return 0;
}

/* What scan_simd and scan_simd512 do after the loop: which of `@` and `%` (seen in `special`), and digits scan_skip must count. */
static int32_t scan_finish(const Scanner *s, const uint8_t *b, int from, int to, int limit, int32_t digit_flags, int special) {
  int32_t flags = 0;
  if (special) {
    /* Which of the two: rare enough to look again. */
    if (s->at_sign != 0 && memchr(b + from, 0x40, (size_t)(to - from)) != NULL) flags |= s->at_sign;
    if (s->percent != 0 && memchr(b + from, 0x25, (size_t)(to - from)) != NULL) flags |= s->percent;
  }
  if (digit_flags != 0 && (limit < 1 || limit > 32)) flags |= scan_skip(s, b, from, to, limit, digit_flags) & digit_flags;
  return flags;
}

/*
 * The same flags as scan_skip, found without its chain of dependent loads (which bounds it to one
 * table lookup per ~10 cycles), 32 positions per step with AVX2:
 * - anchors: Teddy over every window start, then the window looked up whole;
 * - `@` and `%`: compared;
 * - digits: every byte classified (digit, separator); a run of at least `limit` of them located
 *   with shifts; such a run is counted exactly (digit_run_end) only when it may hold `limit` digits.
 * The last bytes go through a zero-padded copy, so nothing is read outside [from, to).
 */
__attribute__((target("avx2,popcnt,bmi"))) static int32_t scan_simd(const Scanner *s, const uint8_t *b, int from, int to, int limit, int32_t digit_flags) {
  int32_t flags = 0;
  Digits d = {.previous = 0};
  runs_start(&d.runs, from, to, limit, digit_flags);
  const __m256i nibble = _mm256_set1_epi8(0x0f);
  const __m256i zero = _mm256_setzero_si256();
  __m256i lo[4], hi[4];
  for (int q = 0; q < 4; q++) {
    lo[q] = _mm256_loadu_si256((const __m256i *)s->teddy[q][0]);
    hi[q] = _mm256_loadu_si256((const __m256i *)s->teddy[q][1]);
  }
  /* One AND of two lookups classifies 32 bytes (see Scanner.classes). */
  const __m256i classes_low = _mm256_loadu_si256((const __m256i *)s->classes[0]);
  const __m256i classes_high = _mm256_loadu_si256((const __m256i *)s->classes[1]);
  const __m256i run_bits = _mm256_set1_epi8(CLASS_SEPARATOR | CLASS_DIGIT);
  __m256i special = zero;
  uint8_t pad[96];
  int last_start = to - 4; /* the last window start that fits */
  for (int k = from; k < to; k += 32) {
    const uint8_t *p = b + k;
    if (k + 35 > to) {
      size_t left = (size_t)(to - k < 64 ? to - k : 64);
      memcpy(pad, b + k, left);
      memset(pad + left, 0, sizeof(pad) - left);
      p = pad;
    }
    if (last_start >= k) {
      uint32_t starts = 0;
      if (!s->fat) {
        /* 32 window starts at a time, 8 buckets. */
        __m256i m = _mm256_set1_epi8(-1);
        for (int q = 0; q < 4; q++) {
          __m256i v = _mm256_loadu_si256((const __m256i *)(p + q));
          m = _mm256_and_si256(m, _mm256_and_si256(_mm256_shuffle_epi8(lo[q], _mm256_and_si256(v, nibble)), _mm256_shuffle_epi8(hi[q], _mm256_and_si256(_mm256_srli_epi16(v, 4), nibble))));
        }
        starts = ~(uint32_t)_mm256_movemask_epi8(_mm256_cmpeq_epi8(m, zero));
      }
      /* Fat Teddy: 16 window starts at a time, each lane of the tables holding 8 buckets. */
      for (int half = 0; s->fat && half < 32; half += 16) {
        __m256i m = _mm256_set1_epi8(-1);
        for (int q = 0; q < 4; q++) {
          __m256i v = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)(p + half + q)));
          m = _mm256_and_si256(m, _mm256_and_si256(_mm256_shuffle_epi8(lo[q], _mm256_and_si256(v, nibble)), _mm256_shuffle_epi8(hi[q], _mm256_and_si256(_mm256_srli_epi16(v, 4), nibble))));
        }
        uint32_t none = (uint32_t)_mm256_movemask_epi8(_mm256_cmpeq_epi8(m, zero));
        starts |= (~(none & (none >> 16)) & 0xffffu) << half;
      }
      if (last_start - k < 31) starts &= (1u << (last_start - k + 1)) - 1;
      while (starts != 0) {
        int j = __builtin_ctz(starts);
        starts &= starts - 1;
        flags |= lookup(s, fold4(b + k + j));
      }
    }
    __m256i v0 = _mm256_loadu_si256((const __m256i *)p);
    __m256i cls = _mm256_and_si256(_mm256_shuffle_epi8(classes_low, _mm256_and_si256(v0, nibble)), _mm256_shuffle_epi8(classes_high, _mm256_and_si256(_mm256_srli_epi16(v0, 4), nibble)));
    special = _mm256_or_si256(special, cls);
    if (d.runs.on) {
      uint64_t numerals = (uint32_t)_mm256_movemask_epi8(_mm256_slli_epi16(cls, 6)); /* CLASS_DIGIT (bit 1) to bit 7 */
      uint64_t classes = ~(uint32_t)_mm256_movemask_epi8(_mm256_cmpeq_epi8(_mm256_and_si256(cls, run_bits), zero)) & 0xffffffffull;
      flags |= digits_step(&d, b, k, classes, numerals);
    }
  }
  int found = !_mm256_testz_si256(special, _mm256_set1_epi8(CLASS_AT | CLASS_PERCENT));
  return flags | scan_finish(s, b, from, to, limit, digit_flags, found);
}

/*
 * The digit runs of the AVX-512 scan, 64 bytes at a time and without the per-run branches of
 * digits_step. A run can raise only where `limit` digits follow each other with at most MAX_GAP
 * (2) separators between two of them. Those separators are bridged, the others (and every other
 * byte) break a chain; PEXT then drops the bridged separators, leaving each chain as a row of
 * ones as long as its digit count, and shifts find a row of `limit`. Only there (rare: a date or
 * an order number has fewer digits) is the run counted exactly, by digit_run_end. PEXT is BMI2,
 * which every CPU with AVX-512 has; the AVX2 scan keeps digits_step (PEXT is microcode on AMD
 * before Zen 3).
 */
typedef struct {
  uint64_t numerals, separators; /* the previous 64 bytes' digits and separators */
  int carried; /* digits of the chain running into these 64 bytes from before */
} Chains;

/* The rare part of chains_step: the chains of `limit` digits found, each counted exactly. */
__attribute__((noinline, target("popcnt,bmi,bmi2"))) static int32_t chains_found(Runs *r, const uint8_t *b, int k, uint64_t rows, int first, uint64_t kept) {
  int32_t flags = first ? runs_count(r, b, k) : 0;
  while (rows != 0 && flags == 0) {
    int bit = __builtin_ctzll(rows);
    rows &= rows - 1;
    flags = runs_count(r, b, k + __builtin_ctzll(_pdep_u64(1ull << bit, kept)));
  }
  return flags;
}

/*
 * The 64 bytes at k: bit j of `n` (digits) and `s` (separators) for byte k + j, none past `to`;
 * `next_n` and `next_s` are the same for the 64 bytes after (the scan runs one block behind, so
 * the bytes after are classified already). Without branches but where a chain is found:
 * digits_step's per-run branches, taken or not by every date and order number, cost more than
 * this whole step. The state is not in Runs, which chains_found takes by address: it stays in
 * registers.
 */
__attribute__((target("popcnt,bmi,bmi2"))) static inline int32_t chains_step(Chains *c, Runs *r, const uint8_t *b, int k, uint64_t n, uint64_t s, uint64_t next_n, uint64_t next_s) {
  const uint64_t before_n = c->numerals, before_s = c->separators;
  c->numerals = n;
  c->separators = s;
  /* x1 / x2: byte j - 1 / j - 2; y1 / y2: byte j + 1 / j + 2. */
  uint64_t n1 = n << 1 | before_n >> 63, n2 = n << 2 | before_n >> 62, s1 = s << 1 | before_s >> 63;
  uint64_t m1 = n >> 1 | next_n << 63, m2 = n >> 2 | next_n << 62, t1 = s >> 1 | next_s << 63;
  /* A separator in a chain: alone between digits, or one of two between digits. */
  uint64_t chained = n | (s & ((n1 & m1) | (n1 & t1 & m2) | (n2 & s1 & m1)));
  uint64_t kept = n | ~chained; /* every byte but a bridged separator (never none: a bridge needs digits) */
  uint64_t ones = _pext_u64(n, kept); /* per kept byte: 1 digit, 0 a break */
  uint64_t rows = ones;
  for (int have = 1; have < r->power; have <<= 1) rows &= rows << have;
  rows &= rows << (r->limit - r->power);
  /* A chain from the bytes before goes on into the first row here. */
  int first = (int)(chained & 1) & (c->carried + (int)_tzcnt_u64(~ones) >= r->limit);
  int32_t flags = (rows | (uint64_t)first) != 0 ? chains_found(r, b, k, rows, first, kept) : 0;
  /* The chain at the end runs on into the next bytes: its digits. */
  uint64_t top = ones << (64 - __builtin_popcountll(kept));
  int trailing = ~top == 0 ? 64 : __builtin_clzll(~top);
  int carried = ~chained == 0 ? c->carried + trailing : trailing;
  c->carried = (chained >> 63) != 0 ? carried : 0;
  return flags;
}

/*
 * scan_simd with AVX-512 (BW): 64 positions a step, masks straight from the compares, and half
 * the shuffles per byte (the port they all need is the bound on Intel). Teddy's 16 buckets are
 * two lookups of 8 (no lanes to pair), and the digit runs are found as chains (chains_step).
 */
__attribute__((target("avx512f,avx512bw,avx2,popcnt,bmi,bmi2"))) static int32_t scan_simd512(const Scanner *s, const uint8_t *b, int from, int to, int limit, int32_t digit_flags) {
  int32_t flags = 0;
  Runs runs;
  runs_start(&runs, from, to, limit, digit_flags);
  Chains chains = {.carried = 0};
  /* The block whose chains are looked for next (one behind: see chains_step), and its masks. */
  int behind = -1;
  uint64_t behind_n = 0, behind_s = 0;
  const __m512i nibble = _mm512_set1_epi8(0x0f);
  __m512i lo[2][4], hi[2][4];
  const int groups = s->fat ? 2 : 1;
  for (int g = 0; g < groups; g++)
    for (int q = 0; q < 4; q++) {
      lo[g][q] = _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)(s->teddy[q][0] + 16 * g)));
      hi[g][q] = _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)(s->teddy[q][1] + 16 * g)));
    }
  const __m512i classes_low = _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)s->classes[0]));
  const __m512i classes_high = _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)s->classes[1]));
  const __m512i separator_bit = _mm512_set1_epi8(CLASS_SEPARATOR);
  const __m512i digit_bit = _mm512_set1_epi8(CLASS_DIGIT);
  __m512i special = _mm512_setzero_si512();
  int last_start = to - 4; /* the last window start that fits */
  for (int k = from; k < to; k += 64) {
    const uint8_t *p = b + k;
    /* Bytes past `to` load as zeros (masked loads read nothing there). */
    __m512i v[4];
    for (int q = 0; q < 4; q++) {
      int left = to - k - q;
      v[q] = left >= 64 ? _mm512_loadu_si512((const void *)(p + q)) : _mm512_maskz_loadu_epi8(left <= 0 ? 0 : (__mmask64)(~0ull >> (64 - left)), p + q);
    }
    if (last_start >= k) {
      __m512i low[4], high[4];
      for (int q = 0; q < 4; q++) {
        low[q] = _mm512_and_si512(v[q], nibble);
        high[q] = _mm512_and_si512(_mm512_srli_epi16(v[q], 4), nibble);
      }
      uint64_t starts = 0;
      for (int g = 0; g < groups; g++) {
        __m512i m = _mm512_and_si512(_mm512_shuffle_epi8(lo[g][0], low[0]), _mm512_shuffle_epi8(hi[g][0], high[0]));
        for (int q = 1; q < 4; q++) m = _mm512_ternarylogic_epi32(m, _mm512_shuffle_epi8(lo[g][q], low[q]), _mm512_shuffle_epi8(hi[g][q], high[q]), 0x80);
        starts |= _mm512_test_epi8_mask(m, m);
      }
      if (last_start - k < 63) starts &= (1ull << (last_start - k + 1)) - 1;
      while (starts != 0) {
        int j = __builtin_ctzll(starts);
        starts &= starts - 1;
        flags |= lookup(s, fold4(b + k + j));
      }
    }
    __m512i cls = _mm512_and_si512(_mm512_shuffle_epi8(classes_low, _mm512_and_si512(v[0], nibble)), _mm512_shuffle_epi8(classes_high, _mm512_and_si512(_mm512_srli_epi16(v[0], 4), nibble)));
    special = _mm512_or_si512(special, cls);
    if (runs.on) {
      uint64_t n = _mm512_test_epi8_mask(cls, digit_bit), sep = _mm512_test_epi8_mask(cls, separator_bit);
      if (behind >= 0) flags |= chains_step(&chains, &runs, b, behind, behind_n, behind_s, n, sep);
      behind = k;
      behind_n = n;
      behind_s = sep;
    }
  }
  /* The last block: nothing after it (bytes past `to` are neither digits nor separators). */
  if (runs.on && behind >= 0) flags |= chains_step(&chains, &runs, b, behind, behind_n, behind_s, 0, 0);
  int found = _mm512_test_epi8_mask(special, _mm512_set1_epi8(CLASS_AT | CLASS_PERCENT)) != 0;
  return flags | scan_finish(s, b, from, to, limit, digit_flags, found);
}
#endif

#ifdef HAVE_SIMD
/* What scan_simd512 needs beside AVX2: AVX-512 F and BW, and BMI2 (PEXT, PDEP) for the digit chains. */
static int has_avx512(void) {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("bmi2");
}
#endif

/* See Prefilter.scan: the flags bytes [from, to) raise, with carry across cells when `carry`. */
static int32_t scan(Scanner *s, const uint8_t *b, int from, int to, int limit, int32_t digit_flags, int carry) {
  int32_t flags = carry && s->carry_length != 0 ? straddle(s, b, from, to) : 0;
  /* Fewer bytes than `limit` digits cannot hold a run of them (a short id, a count). */
  if (to - from < limit) digit_flags = 0;
#ifdef HAVE_SIMD
  if (s->simd == 2 && to - from >= 48) flags |= scan_simd512(s, b, from, to, limit, digit_flags);
  else if (s->simd && to - from >= 48) flags |= scan_simd(s, b, from, to, limit, digit_flags);
  else
#endif
    flags |= scan_skip(s, b, from, to, limit, digit_flags);
  if (carry) advance(s, b, from, to);
  return flags;
}

/* ---- N-API glue -------------------------------------------------------------------------- */

#define CHECK(call)                                   \
  do {                                                \
    if ((call) != napi_ok) return fail(env, #call);   \
  } while (0)

static napi_value fail(napi_env env, const char *what) {
  const napi_extended_error_info *info = NULL;
  napi_get_last_error_info(env, &info);
  bool pending = false;
  napi_is_exception_pending(env, &pending);
  if (!pending) napi_throw_error(env, "ERR_AIRLOCK_NATIVE", info != NULL && info->error_message != NULL ? info->error_message : what);
  return NULL;
}

static napi_value throw_range(napi_env env, const char *message) {
  napi_throw_range_error(env, "ERR_AIRLOCK_NATIVE", message);
  return NULL;
}

static void finalize(napi_env env, void *data, void *hint) {
  (void)hint;
  Scanner *s = data;
  if (s->io_ref != NULL) napi_delete_reference(env, s->io_ref);
  free(s->keys);
  free(s->values);
  free(s);
}

static napi_status typed(napi_env env, napi_value value, napi_typedarray_type want, void **data, size_t *length) {
  napi_typedarray_type type;
  napi_value buffer;
  size_t offset;
  napi_status status = napi_get_typedarray_info(env, value, &type, length, data, &buffer, &offset);
  if (status != napi_ok) return status;
  return type == want ? napi_ok : napi_invalid_arg;
}

static napi_status bytes_of(napi_env env, napi_value value, const uint8_t **data, size_t *length) {
  return typed(env, value, napi_uint8_array, (void **)data, length);
}

/*
 * The arguments of a call on a scanner: exactly `count` of them, the scanner first. NULL (with a
 * RangeError thrown, `usage` its message) when they are not.
 */
static Scanner *scanner_args(napi_env env, napi_callback_info info, size_t count, napi_value *argv, const char *usage) {
  size_t argc = count;
  void *data = NULL;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc != count || napi_get_value_external(env, argv[0], &data) != napi_ok) {
    throw_range(env, usage);
    return NULL;
  }
  return data;
}


/* How often a byte is seen in ordinary text (per mille, roughly): what a Teddy bucket costs. */
static double frequency(int byte) {
  static const double letters[26] = {8.2, 1.5, 2.8, 4.3, 12.7, 2.2, 2.0, 6.1, 7.0, 0.15, 0.8, 4.0, 2.4, 6.7, 7.5, 1.9, 0.1, 6.0, 6.3, 9.1, 2.8, 1.0, 2.4, 0.15, 2.0, 0.07};
  if (byte >= 0x61 && byte <= 0x7a) return 6.0 * letters[byte - 0x61];
  if (byte >= 0x41 && byte <= 0x5a) return 0.6 * letters[byte - 0x41];
  if (byte >= 0x30 && byte <= 0x39) return 30.0;
  if (byte == 0x20) return 150.0;
  if (byte == 0x2e || byte == 0x2c || byte == 0x2d || byte == 0x0a) return 10.0;
  if (byte >= 0x21 && byte <= 0x7e) return 2.0;
  return 0.5;
}

/* The chance that a window falls in a bucket whose nibble tables are `tables` (Teddy's false positives). */
static double bucket_cost(uint8_t tables[4][2][32], int bucket) {
  int lane = bucket >> 3 << 4;
  uint8_t bit = (uint8_t)(1u << (bucket & 7));
  double cost = 1.0;
  for (int q = 0; q < 4; q++) {
    double p = 0;
    for (int byte = 0; byte < 256; byte++)
      if ((tables[q][0][lane + (byte & 15)] & tables[q][1][lane + (byte >> 4)] & bit) != 0) p += frequency(byte) / 1000.0;
    cost *= p < 1.0 ? p : 1.0;
  }
  return cost;
}

static void teddy_add(uint8_t tables[4][2][32], uint32_t key, int bucket) {
  int lane = bucket >> 3 << 4;
  uint8_t bit = (uint8_t)(1u << (bucket & 7));
  for (int q = 0; q < 4; q++) {
    uint8_t byte = (uint8_t)(key >> (8 * (3 - q)));
    uint8_t spellings[2] = {byte, byte >= 0x61 && byte <= 0x7a ? (uint8_t)(byte & ~0x20) : byte};
    for (int c = 0; c < 2; c++) {
      tables[q][0][lane + (spellings[c] & 15)] |= bit;
      tables[q][1][lane + (spellings[c] >> 4)] |= bit;
    }
  }
}

/*
 * Teddy's tables: each anchor (a letter in both cases) goes to the bucket where it adds the least
 * to the chance of a false candidate in ordinary text, as Hyperscan assigns its literals.
 */
/* An anchor and what it costs in a bucket of its own: the costliest are placed first. */
typedef struct {
  uint32_t key;
  double cost;
} Ranked;

static int costliest_first(const void *a, const void *b) {
  double x = ((const Ranked *)a)->cost, y = ((const Ranked *)b)->cost;
  return x > y ? -1 : x < y;
}

static void build_teddy(Scanner *s, const uint32_t *keys, size_t count) {
  memset(s->teddy, 0, sizeof(s->teddy));
  double costs[BUCKETS] = {0};
  s->fat = count > FAT_ABOVE;
  int buckets = s->fat ? BUCKETS : BUCKETS / 2;
  Ranked *ranked = malloc((count + 1) * sizeof(Ranked));
  if (ranked == NULL) {
    memset(s->teddy, 0xff, sizeof(s->teddy)); /* every window a candidate: slow, still exact */
    return;
  }
  for (size_t k = 0; k < count; k++) {
    uint8_t alone[4][2][32] = {{{0}}};
    teddy_add(alone, keys[k], 0);
    ranked[k] = (Ranked){keys[k], bucket_cost(alone, 0)};
  }
  qsort(ranked, count, sizeof(Ranked), costliest_first);
  for (size_t k = 0; k < count; k++) {
    int best = 0;
    double best_added = 0;
    for (int bucket = 0; bucket < buckets; bucket++) {
      uint8_t trial[4][2][32];
      memcpy(trial, s->teddy, sizeof(trial));
      teddy_add(trial, ranked[k].key, bucket);
      double added = bucket_cost(trial, bucket) - costs[bucket];
      if (bucket == 0 || added < best_added) {
        best = bucket;
        best_added = added;
      }
    }
    teddy_add(s->teddy, ranked[k].key, best);
    costs[best] += best_added;
  }
  free(ranked);
  if (!s->fat)
    for (int q = 0; q < 4; q++)
      for (int t = 0; t < 2; t++) memcpy(s->teddy[q][t] + 16, s->teddy[q][t], 16);
}

/* create(withDigits, withoutDigits, slots, anchorKeys, anchorFlags, [atSign, percent, across, simd], io) */
static napi_value create(napi_env env, napi_callback_info info) {
  size_t argc = 7;
  napi_value argv[7];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc != 7) return throw_range(env, "create takes 7 arguments");
  void *with, *without, *slots, *keys, *flags, *bits, *io;
  size_t with_length, without_length, slots_length, key_count, flag_count, bit_count, io_length;
  CHECK(typed(env, argv[0], napi_uint8_array, &with, &with_length));
  CHECK(typed(env, argv[1], napi_uint8_array, &without, &without_length));
  CHECK(typed(env, argv[2], napi_int32_array, &slots, &slots_length));
  CHECK(typed(env, argv[3], napi_int32_array, &keys, &key_count));
  CHECK(typed(env, argv[4], napi_int32_array, &flags, &flag_count));
  CHECK(typed(env, argv[5], napi_int32_array, &bits, &bit_count));
  CHECK(typed(env, argv[6], napi_int32_array, &io, &io_length));
  if (with_length != 1 << 16 || without_length != 1 << 16 || slots_length != (1 << SLOT_BITS) >> 5 || key_count != flag_count || bit_count != 4) {
    return throw_range(env, "prefilter tables of the wrong size");
  }
  Scanner *s = calloc(1, sizeof(Scanner));
  uint32_t capacity = 16;
  while (capacity < key_count * 2) capacity <<= 1;
  if (s == NULL || (s->keys = calloc(capacity, sizeof(uint32_t))) == NULL || (s->values = calloc(capacity, sizeof(int32_t))) == NULL) {
    if (s != NULL) {
      free(s->keys);
      free(s);
    }
    napi_throw_error(env, "ERR_AIRLOCK_NATIVE", "out of memory");
    return NULL;
  }
  memcpy(s->with_digits, with, 1 << 16);
  memcpy(s->without_digits, without, 1 << 16);
  memcpy(s->slots, slots, sizeof(s->slots));
  s->capacity_mask = capacity - 1;
  for (size_t k = 0; k < key_count; k++) {
    uint32_t key = ((uint32_t *)keys)[k];
    if (key == 0) {
      s->zero_flags |= ((int32_t *)flags)[k];
      continue;
    }
    uint32_t at = slot_of(key) & s->capacity_mask;
    while (s->keys[at] != 0 && s->keys[at] != key) at = (at + 1) & s->capacity_mask;
    s->keys[at] = key;
    s->values[at] |= ((int32_t *)flags)[k];
  }
  build_teddy(s, (const uint32_t *)keys, key_count);
#ifdef HAVE_SIMD
  __builtin_cpu_init();
  s->simd = ((int32_t *)bits)[3] != 0 && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("popcnt") && __builtin_cpu_supports("bmi");
  if (s->simd && ((int32_t *)bits)[3] != 2 && has_avx512()) s->simd = 2;
#endif
  s->at_sign = ((int32_t *)bits)[0];
  s->percent = ((int32_t *)bits)[1];
  s->across = ((int32_t *)bits)[2];
  /* Exact by nibbles: the separators all have the high nibble 2, the digits 3. */
  for (int byte = 0; byte < 0x80; byte++) {
    uint8_t bit = DIGIT_CLASS[byte] == 2 ? CLASS_SEPARATOR : DIGIT_CLASS[byte] == 1 ? CLASS_DIGIT : 0;
    if (byte == 0x40 && s->at_sign != 0) bit = CLASS_AT;
    if (byte == 0x25 && s->percent != 0) bit = CLASS_PERCENT;
    for (int lane = 0; bit != 0 && lane < 32; lane += 16) {
      s->classes[0][lane + (byte & 15)] |= bit;
      s->classes[1][lane + (byte >> 4)] |= bit;
    }
  }
  s->io = io;
  s->io_length = io_length;
  napi_value result;
  if (napi_create_external(env, s, finalize, NULL, &result) != napi_ok) {
    finalize(env, s, NULL);
    return fail(env, "napi_create_external");
  }
  CHECK(napi_create_reference(env, argv[6], 1, &s->io_ref));
  return result;
}

static napi_value int32_value(napi_env env, int32_t value) {
  napi_value result;
  if (napi_create_int32(env, value, &result) != napi_ok) return fail(env, "napi_create_int32");
  return result;
}

/* scan(scanner, bytes, from, to, digitLimit, digitFlags, carry: 0 none, 1 go on, 2 fresh) */
static napi_value js_scan(napi_env env, napi_callback_info info) {
  napi_value argv[7];
  Scanner *s = scanner_args(env, info, 7, argv, "scan takes a scanner and 6 arguments");
  if (s == NULL) return NULL;
  const uint8_t *b;
  size_t length;
  int32_t from, to, limit, digit_flags, carry;
  CHECK(bytes_of(env, argv[1], &b, &length));
  CHECK(napi_get_value_int32(env, argv[2], &from));
  CHECK(napi_get_value_int32(env, argv[3], &to));
  CHECK(napi_get_value_int32(env, argv[4], &limit));
  CHECK(napi_get_value_int32(env, argv[5], &digit_flags));
  CHECK(napi_get_value_int32(env, argv[6], &carry));
  if (from < 0 || to < from || (size_t)to > length) return throw_range(env, "scan range outside the bytes");
  if (carry == 2) s->carry_length = 0;
  return int32_value(env, scan(s, b, from, to, limit, digit_flags, carry != 0));
}

/*
 * A DataRow body's cells scanned under the column specs in io (SPEC_WIDTH ints per column from 0);
 * each cell's flags go to `cells` (0 for NULL), or to io[count * SPEC_WIDTH + i] when `cells` is
 * NULL. Returns the flags of all cells together; -1 when the body is malformed, -2 when its count
 * does not fit the specs given (io[io.length - 1] holds the column count of the specs), -3 when
 * `cells` has room for fewer than count flags.
 */
static int32_t row_flags(Scanner *s, const uint8_t *b, size_t length, int carry, int32_t *cells, size_t room) {
  if (length < 2 || length > INT32_MAX) return -1;
  int count = (b[0] << 8) | b[1];
  int32_t *io = s->io;
  if (count != io[s->io_length - 1] || (size_t)count * (SPEC_WIDTH + 1) + 1 > s->io_length) return -2;
  if (cells != NULL && (size_t)count > room) return -3;
  int32_t *out = cells != NULL ? cells : io + count * SPEC_WIDTH;
  s->carry_length = 0;
  int32_t raised = 0;
  int offset = 2;
  int end = (int)length;
  for (int i = 0; i < count; i++) {
    if (offset + 4 > end) return -1;
    int32_t cell = (int32_t)(((uint32_t)b[offset] << 24) | ((uint32_t)b[offset + 1] << 16) | ((uint32_t)b[offset + 2] << 8) | b[offset + 3]);
    offset += 4;
    if (cell == -1) {
      out[i] = 0;
      continue;
    }
    if (cell < 0 || cell > end - offset) return -1;
    const int32_t *spec = io + i * SPEC_WIDTH;
    int32_t flags = spec[3] | (scan(s, b, offset, offset + cell, spec[1], spec[2], carry) & spec[0]);
    out[i] = flags;
    raised |= flags;
    offset += cell;
  }
  return offset == end ? raised : -1;
}

/* How COPY lines are split: see copy_flags. */
typedef struct {
  int delimiter;
  const uint8_t *null_bytes;
  size_t null_length;
  int limit;
  int32_t digit_flags, mask;
  int carry;
} CopySpec;

/* Fields of a COPY line whose flags copyLine keeps in io: as many as DataRow columns. */
static size_t copy_fields_max(const Scanner *s) { return (s->io_length - 1) / (SPEC_WIDTH + 1); }

/*
 * The fields of a COPY line with nothing to unescape, bytes [0, end), scanned in place; a field
 * equal to the NULL spelling is skipped (its flags are 0). Each field's flags go to `cells` (the
 * first `room` of them); the number of fields to `fields`. Returns the flags of all fields together.
 */
static int32_t copy_flags(Scanner *s, const uint8_t *b, int end, const CopySpec *spec, int32_t *cells, size_t room, size_t *fields) {
  s->carry_length = 0;
  int32_t raised = 0;
  size_t field = 0;
  for (int start = 0; start <= end; field++) {
    const uint8_t *hit = start < end ? memchr(b + start, spec->delimiter, (size_t)(end - start)) : NULL;
    int stop = hit == NULL ? end : (int)(hit - b);
    int is_null = (size_t)(stop - start) == spec->null_length && memcmp(b + start, spec->null_bytes, spec->null_length) == 0;
    int32_t flags = is_null ? 0 : scan(s, b, start, stop, spec->limit, spec->digit_flags, spec->carry) & spec->mask;
    if (field < room) cells[field] = flags;
    raised |= flags;
    start = stop + 1;
  }
  *fields = field;
  return raised;
}

/* dataRow(scanner, body, carry): row_flags of one body. */
static napi_value js_data_row(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  Scanner *s = scanner_args(env, info, 3, argv, "dataRow takes a scanner, a body and a carry flag");
  if (s == NULL) return NULL;
  const uint8_t *b;
  size_t length;
  bool carry;
  CHECK(bytes_of(env, argv[1], &b, &length));
  CHECK(napi_get_value_bool(env, argv[2], &carry));
  return int32_value(env, row_flags(s, b, length, carry, NULL, 0));
}

static napi_status copy_spec_of(napi_env env, napi_value *argv, CopySpec *spec) {
  int32_t delimiter;
  bool carry;
  napi_status status;
  if ((status = napi_get_value_int32(env, argv[0], &delimiter)) != napi_ok) return status;
  if ((status = bytes_of(env, argv[1], &spec->null_bytes, &spec->null_length)) != napi_ok) return status;
  if ((status = napi_get_value_int32(env, argv[2], &spec->limit)) != napi_ok) return status;
  if ((status = napi_get_value_int32(env, argv[3], &spec->digit_flags)) != napi_ok) return status;
  if ((status = napi_get_value_int32(env, argv[4], &spec->mask)) != napi_ok) return status;
  if ((status = napi_get_value_bool(env, argv[5], &carry)) != napi_ok) return status;
  spec->delimiter = delimiter;
  spec->carry = carry;
  return napi_ok;
}

/* copyLine(scanner, line, end, delimiter, null, digitLimit, digitFlags, mask, carry): copy_flags, each field's flags in io from copy_fields_max * SPEC_WIDTH. */
static napi_value js_copy_line(napi_env env, napi_callback_info info) {
  napi_value argv[9];
  Scanner *s = scanner_args(env, info, 9, argv, "copyLine takes a scanner and 8 arguments");
  if (s == NULL) return NULL;
  const uint8_t *b;
  size_t length;
  int32_t end;
  CopySpec spec;
  CHECK(bytes_of(env, argv[1], &b, &length));
  CHECK(napi_get_value_int32(env, argv[2], &end));
  CHECK(copy_spec_of(env, argv + 3, &spec));
  if (end < 0 || (size_t)end > length) return throw_range(env, "copyLine end outside the line");
  const size_t max = copy_fields_max(s);
  size_t fields;
  return int32_value(env, copy_flags(s, b, end, &spec, s->io + max * SPEC_WIDTH, max, &fields));
}

/*
 * A walk over the messages of one read: the chunk, where the next message starts, the output (two
 * ints per message: its flags, and where its cells' flags are in `cells`, -1 when not kept), and
 * `cells`, filled from `used`: per message that raises, its width (cells or fields), then each
 * one's flags.
 */
typedef struct {
  const uint8_t *bytes;
  size_t length;
  size_t at;
  int32_t *out;
  size_t capacity;
  size_t count;
  int32_t *cells;
  size_t cells_length;
  size_t used;
} Walk;

/*
 * argv[1] chunk, argv[2] start, argv[3] out, argv[4] cells (Int32Arrays); false (a RangeError
 * `usage` thrown) when they do not fit.
 */
static bool walk_of(napi_env env, napi_value *argv, Walk *walk, const char *usage) {
  int32_t start;
  void *out, *cells;
  size_t out_length;
  if (bytes_of(env, argv[1], &walk->bytes, &walk->length) != napi_ok || napi_get_value_int32(env, argv[2], &start) != napi_ok ||
      typed(env, argv[3], napi_int32_array, &out, &out_length) != napi_ok || typed(env, argv[4], napi_int32_array, &cells, &walk->cells_length) != napi_ok ||
      start < 0 || (size_t)start > walk->length || walk->length > INT32_MAX || walk->cells_length > INT32_MAX) {
    throw_range(env, usage);
    return false;
  }
  walk->at = (size_t)start;
  walk->out = out;
  walk->capacity = out_length / 2;
  walk->count = 0;
  walk->cells = cells;
  walk->used = 0;
  return true;
}

/*
 * The length field of the message of `type` at the walk's position, whole inside the chunk (its
 * body is the `size - 4` bytes from at + 5); 0 when there is none, or `out` is full.
 */
static uint32_t walk_next(const Walk *walk, uint8_t type) {
  const uint8_t *b = walk->bytes;
  size_t at = walk->at;
  if (walk->count >= walk->capacity || at + 5 > walk->length || b[at] != type) return 0;
  uint32_t size = ((uint32_t)b[at + 1] << 24) | ((uint32_t)b[at + 2] << 16) | ((uint32_t)b[at + 3] << 8) | b[at + 4];
  return size < 4 || size > walk->length - at - 1 ? 0 : size;
}

/* Room in `cells` for the flags of a message that raises (after its width). */
static size_t walk_room(const Walk *walk) { return walk->used < walk->cells_length ? walk->cells_length - walk->used - 1 : 0; }

/* The message scanned (`flags`) into out; where `width` flags written after cells[used] are kept, when it raised and they fit. */
static void walk_take(Walk *walk, uint32_t size, int32_t flags, size_t width) {
  int32_t *out = walk->out + 2 * walk->count++;
  out[0] = flags;
  out[1] = -1;
  if (flags > 0 && width <= walk_room(walk)) {
    walk->cells[walk->used] = (int32_t)width;
    out[1] = (int32_t)walk->used;
    walk->used += 1 + width;
  }
  walk->at += 1 + size;
}

/*
 * dataRows(scanner, chunk, start, out, cells, carry): the DataRow messages ('D', Int32 length,
 * body) that follow each other whole in `chunk` from `start`, each scanned as by dataRow; see Walk
 * for out and cells. Stops at any other message, one cut off by the chunk's end, one row_flags
 * cannot read (the caller scans that one alone and reports it), a row that raises when its cells
 * would not fit in `cells`, or when `out` is full. Returns the rows scanned. One call for a read's
 * worth of rows: a call into C costs about as much as scanning a 100-byte row.
 */
static napi_value js_data_rows(napi_env env, napi_callback_info info) {
  napi_value argv[6];
  Scanner *s = scanner_args(env, info, 6, argv, "dataRows takes a scanner, a chunk, a start, an output, cells and a carry flag");
  Walk walk;
  bool carry;
  if (s == NULL || !walk_of(env, argv, &walk, "dataRows takes a chunk, a start inside it and two Int32Arrays")) return NULL;
  CHECK(napi_get_value_bool(env, argv[5], &carry));
  for (uint32_t size; (size = walk_next(&walk, 'D')) != 0;) {
    const uint8_t *body = walk.bytes + walk.at + 5;
    int32_t flags = row_flags(s, body, size - 4, carry, walk.cells + walk.used + 1, walk_room(&walk));
    if (flags < 0) break;
    walk_take(&walk, size, flags, (size_t)((body[0] << 8) | body[1]));
  }
  return int32_value(env, (int32_t)walk.count);
}

/*
 * copyLines(scanner, chunk, start, out, cells, quote, delimiter, null, digitLimit, digitFlags,
 * mask, carry): the CopyData messages ('d', Int32 length, one line) that follow each other whole
 * in `chunk` from `start`, each line's copy_flags, or -1 when the line holds a byte that needs
 * unescaping (a backslash in text, the quote in CSV, where `quote` is not -1: the caller parses
 * that one); see Walk for out and cells. Stops at any other message, one cut off, a line that
 * raises when its fields would not fit in `cells` (unless it is the first: it is taken, its fields
 * not kept), or when `out` is full.
 */
static napi_value js_copy_lines(napi_env env, napi_callback_info info) {
  napi_value argv[12];
  Scanner *s = scanner_args(env, info, 12, argv, "copyLines takes a scanner and 11 arguments");
  Walk walk;
  int32_t quote;
  CopySpec spec;
  if (s == NULL || !walk_of(env, argv, &walk, "copyLines takes a chunk, a start inside it and two Int32Arrays")) return NULL;
  CHECK(napi_get_value_int32(env, argv[5], &quote));
  CHECK(copy_spec_of(env, argv + 6, &spec));
  int special = quote >= 0 ? quote : 0x5c;
  for (uint32_t size; (size = walk_next(&walk, 'd')) != 0;) {
    const uint8_t *line = walk.bytes + walk.at + 5;
    int end = (int)(size - 4);
    int32_t flags;
    size_t fields = 0;
    if (memchr(line, special, (size_t)end) != NULL) {
      flags = -1;
    } else {
      if (end > 0 && line[end - 1] == 0x0a) end--;
      if (quote >= 0 && end > 0 && line[end - 1] == 0x0d) end--;
      size_t room = walk_room(&walk);
      flags = copy_flags(s, line, end, &spec, walk.cells + walk.used + 1, room, &fields);
      if (flags > 0 && fields > room && walk.count > 0) break; /* the next batch starts with it */
    }
    walk_take(&walk, size, flags, fields);
  }
  return int32_value(env, (int32_t)walk.count);
}

static void init_tables(void) {
  static const char separators[] = " -.()/+";
  for (int code = 0; code < 256; code++) {
    FOLD[code] = (uint8_t)(code >= 0x41 && code <= 0x5a ? code | 0x20 : code);
    if (code >= 0x30 && code <= 0x39) DIGIT_CLASS[code] = 1;
    else if (code != 0 && strchr(separators, code) != NULL) DIGIT_CLASS[code] = 2;
    if ((code >= 0x61 && code <= 0x7a) || code == 0x5f) GLUE[code] = 1;
  }
}

/* simd(): the SIMD scan a scanner made now runs where it may: "avx512", "avx2" or "none". */
static napi_value js_simd(napi_env env, napi_callback_info info) {
  (void)info;
  const char *name = "none";
#ifdef HAVE_SIMD
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("popcnt") && __builtin_cpu_supports("bmi"))
    name = has_avx512() ? "avx512" : "avx2";
#endif
  napi_value result;
  if (napi_create_string_utf8(env, name, NAPI_AUTO_LENGTH, &result) != napi_ok) return fail(env, "napi_create_string_utf8");
  return result;
}

NAPI_MODULE_INIT() {
  init_tables();
  napi_property_descriptor properties[] = {
      {"create", NULL, create, NULL, NULL, NULL, napi_default_jsproperty, NULL},
      {"scan", NULL, js_scan, NULL, NULL, NULL, napi_default_jsproperty, NULL},
      {"dataRow", NULL, js_data_row, NULL, NULL, NULL, napi_default_jsproperty, NULL},
      {"copyLine", NULL, js_copy_line, NULL, NULL, NULL, napi_default_jsproperty, NULL},
      {"dataRows", NULL, js_data_rows, NULL, NULL, NULL, napi_default_jsproperty, NULL},
      {"copyLines", NULL, js_copy_lines, NULL, NULL, NULL, napi_default_jsproperty, NULL},
      {"simd", NULL, js_simd, NULL, NULL, NULL, napi_default_jsproperty, NULL},
  };
  if (napi_define_properties(env, exports, sizeof(properties) / sizeof(properties[0]), properties) != napi_ok) return NULL;
  return exports;
}
