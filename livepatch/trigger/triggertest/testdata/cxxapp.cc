// cxxapp: answers each stdin line N with cxx_outer(N), or with "caught
// WHAT" when an exception thrown inside the (patched) library reaches main.
#include <cstdio>
#include <cstdlib>
#include <stdexcept>

extern "C" int cxx_outer(int x);

int main() {
  std::printf("ready\n");
  std::fflush(stdout);
  char line[64];
  while (std::fgets(line, sizeof line, stdin)) {
    try {
      std::printf("%d\n", cxx_outer(std::atoi(line)));
    } catch (const std::exception &e) {
      std::printf("caught %s\n", e.what());
    }
    std::fflush(stdout);
  }
  return 1;
}
