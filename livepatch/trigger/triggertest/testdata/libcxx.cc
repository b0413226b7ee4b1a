// libcxx.so.1: patchable C++ functions that throw. cxx_outer calls
// cxx_inner, which throws for a negative argument.
#include <stdexcept>

extern "C" __attribute__((noipa)) int cxx_inner(int x) {
  if (x < 0)
    throw std::runtime_error("inner");
  return x;
}

extern "C" __attribute__((noipa)) int cxx_outer(int x) { return cxx_inner(x) + 1; }
