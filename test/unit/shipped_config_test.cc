// The configuration the package and `make install` ship (etc/chroot.conf): it defines no
// chroot (issue 13: an installed schroot lists nothing it cannot run), and its examples,
// once uncommented as its header says, are valid definitions.
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include "src/config.h"

namespace schroot {
namespace {

std::string shipped_chroot_conf() {
  std::ifstream in(SHIPPED_CHROOT_CONF);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

TEST(ShippedChrootConf, DefinesNoChroot) {
  const std::string text = shipped_chroot_conf();
  ASSERT_FALSE(text.empty()) << SHIPPED_CHROOT_CONF;

  const ChrootSet set = Config::load_text(text, "chroot.conf");

  EXPECT_TRUE(set.chroots.empty());
  EXPECT_TRUE(set.warnings.empty());
}

// "#[name]" and "#key=value" lines are the examples; "# ..." lines stay comments.
TEST(ShippedChrootConf, ItsExamplesAreValidOnceUncommented) {
  std::istringstream in(shipped_chroot_conf());
  std::string uncommented;
  for (std::string line; std::getline(in, line);) {
    if (line.size() > 1 && line[0] == '#' && line[1] != ' ' && line[1] != '#') line.erase(0, 1);
    uncommented += line + "\n";
  }

  const ChrootSet set = Config::load_text(uncommented, "chroot.conf");

  EXPECT_EQ(set.chroots.size(), 3u);
  EXPECT_TRUE(set.warnings.empty()) << (set.warnings.empty() ? "" : set.warnings.front().to_string());
  EXPECT_EQ(set.chroots.count("sid"), 1u);
}

}  // namespace
}  // namespace schroot
