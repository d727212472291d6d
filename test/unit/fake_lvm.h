// FakeLvm: the unit tests' lvm. Installed as the tool layer's runner for its lifetime
// (lvm::ScopedRunner), it answers as lvm would and keeps every command it was asked to run.
#pragma once

#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "src/sys/command.h"
#include "src/sys/lvm.h"

namespace schroot::test {

namespace lvm = sys::lvm;
using Args = std::vector<std::string>;  // an lvm command line, subcommand first

// lvm's answers: success with its output, or a failure (status 5, as lvm's ECMD_FAILED).
inline lvm::Output ok(const std::string& out = "", const std::string& err = "") {
  return {sys::ExitStatus{true, 0, 0, false, false}, out, err};
}
inline lvm::Output failed(const std::string& err, int code = 5) {
  return {sys::ExitStatus{true, code, 0, false, false}, "", err};
}

class FakeLvm : public lvm::Runner {
 public:
  using Answer = std::function<lvm::Output(const Args&)>;
  explicit FakeLvm(Answer a) : answer_(std::move(a)), scope_(*this) {}
  lvm::Output run(const Args& args) override {
    calls.push_back(args);
    return answer_(args);
  }
  // The subcommands run, in order ("lvs", "lvcreate", ...).
  std::vector<std::string> subcommands() const {
    std::vector<std::string> s;
    for (const auto& c : calls) s.push_back(c.at(0));
    return s;
  }
  std::vector<Args> calls;

 private:
  Answer answer_;
  lvm::ScopedRunner scope_;
};

}  // namespace schroot::test
