// GCC 12's AVX-512 intrinsics (_mm512_cvtps_ph, _mm512_cvtps_pd, _mm512_reduce_add_pd, ...) start
// from _mm512_undefined_*() and trip -Wmaybe-uninitialized once inlined into our code: a known
// false positive of the headers, silenced for the files that include this.
#pragma once
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#endif
