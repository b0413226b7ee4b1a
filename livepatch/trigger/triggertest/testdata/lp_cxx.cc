// A livepatch of libcxx.so.1 whose replacements throw through their own
// frames: cxx_inner_lp throws std::range_error for x < 10.
#include <stdexcept>

extern "C" int cxx_inner(int x);

extern "C" __attribute__((noipa)) int cxx_inner_lp(int x) {
  if (x < 10)
    throw std::range_error("inner_lp");
  return 1000 + x;
}

extern "C" __attribute__((noipa)) int cxx_outer_lp(int x) { return cxx_inner(x) + 2; }
