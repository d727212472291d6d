// --json end to end: the schroot under test prints one JSON document for --list,
// --info, --config and --location, with real types (arrays, booleans, numbers), and
// the same data as the text form, which --json leaves unchanged.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <sstream>

#include "test/json_reader.h"
#include "test/privileged/harness.h"

using schroot::test::JsonNode;
using schroot::test::JsonReader;
using schroot::test::RunResult;
using schroot::test::TestRoot;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

namespace {

using Kind = JsonNode::Kind;

class JsonOutput : public ::testing::Test {
 protected:
  void SetUp() override {
    tree_ = root_.make_tree("bb");
    root_.write_config("[bb]\ntype=directory\ndirectory=" + tree_ +
                       "\nprofile=minimal\ndescription=say \"hi\" \xc3\xa9t\xc3\xa9\naliases=box\n"
                       "union-type=overlay\ndebian.dist=sid\n"
                       "[host]\ntype=plain\ndirectory=" + tree_ + "\n");
  }
  void TearDown() override {
    if (!session_) return;
    EXPECT_TRUE(succeeded(root_.schroot({"-e", "-c", "s1"})));
  }
  void begin() {
    auto b = root_.schroot({"-b", "-c", "box", "-n", "s1"});
    ASSERT_EQ(b.status, 0) << b.err;
    session_ = true;
  }
  // Runs schroot with args and parses what it printed as one JSON document.
  JsonNode json(std::vector<std::string> args) {
    args.push_back("--json");
    last_ = root_.schroot(args);
    EXPECT_EQ(last_.status, 0) << last_.err;
    JsonNode doc = JsonReader::parse(last_.out);
    EXPECT_EQ(doc.at("format").number, 1);
    return doc;
  }
  std::vector<std::string> text_lines(const std::vector<std::string>& args) {
    auto r = root_.schroot(args);
    EXPECT_EQ(r.status, 0) << r.err;
    std::vector<std::string> lines;
    std::istringstream in(r.out);
    for (std::string l; std::getline(in, l);) lines.push_back(l);
    return lines;
  }

  TestRoot root_;
  std::string tree_;
  bool session_ = false;
  RunResult last_;
};

// A JSON value as the text form shows it: lists joined by blanks, booleans as words.
std::string as_text(const JsonNode& n) {
  switch (n.kind) {
    case Kind::kString: return n.string;
    case Kind::kBool: return n.boolean ? "true" : "false";
    case Kind::kNumber: return std::to_string(n.number);
    case Kind::kArray: {
      std::string out;
      for (const auto& s : n.strings()) out += (out.empty() ? "" : " ") + s;
      return out;
    }
    default: return "<" + std::to_string(static_cast<int>(n.kind)) + ">";
  }
}

// Every "  Label   value" line of an --info text block has its JSON member
// ("Root Users" -> "root-users") with the same value; user data lines are skipped
// (checked as an object elsewhere).
void expect_text_and_json_agree(const std::vector<std::string>& text, const JsonNode& object) {
  for (const auto& line : text) {
    if (line.compare(0, 4, "    ") == 0 || line.find("\u2500") != std::string::npos) continue;
    const std::size_t gap = line.find("  ", 2);
    const std::string label = line.substr(2, gap - 2);
    const std::size_t v = line.find_first_not_of(' ', gap);
    const std::string value = v == std::string::npos ? "" : line.substr(v);
    std::string key;
    for (char c : label) key += c == ' ' ? '-' : static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    ASSERT_TRUE(object.has(key)) << key;
    if (key == "user-data") continue;
    EXPECT_EQ(as_text(object.at(key)), value) << key;
  }
}

TEST_F(JsonOutput, ListIsOneArrayOfTheTextFormsEntries) {
  const JsonNode doc = json({"--list"});
  ASSERT_EQ(doc.at("list").kind, Kind::kArray);
  EXPECT_EQ(doc.at("list").strings(), text_lines({"--list"}));
  EXPECT_THAT(doc.at("list").strings(), ElementsAre("chroot:bb", "chroot:box", "chroot:box-source", "chroot:host",
                                                      "source:bb", "source:box"));
}

TEST_F(JsonOutput, ListOfNoSessionsIsAnEmptyArray) {
  const JsonNode doc = json({"--list", "--all-sessions", "--exclude-aliases"});
  EXPECT_EQ(doc.at("list").kind, Kind::kArray);
  EXPECT_THAT(doc.at("list").items, IsEmpty());
  EXPECT_EQ(last_.out, "{\n  \"format\": 1,\n  \"list\": []\n}\n");
}

TEST_F(JsonOutput, InfoOfADirectoryChrootHasArraysBooleansAndUserData) {
  const JsonNode bb = json({"--info", "-c", "box"}).at("info").items.at(0);
  EXPECT_EQ(bb.at("namespace").string, "chroot");
  EXPECT_EQ(bb.at("name").string, "bb");
  EXPECT_EQ(bb.at("type").string, "directory");
  EXPECT_EQ(bb.at("description").string, "say \"hi\" \xc3\xa9t\xc3\xa9");
  EXPECT_THAT(bb.at("aliases").strings(), ElementsAre("box"));
  ASSERT_EQ(bb.at("users").kind, Kind::kArray);
  EXPECT_THAT(bb.at("users").items, IsEmpty());
  ASSERT_EQ(bb.at("command-prefix").kind, Kind::kArray);  // the text leaves this line out
  EXPECT_THAT(bb.at("command-prefix").items, IsEmpty());
  ASSERT_EQ(bb.at("session-managed").kind, Kind::kBool);
  EXPECT_TRUE(bb.at("session-managed").boolean);
  ASSERT_EQ(bb.at("preserve-environment").kind, Kind::kBool);
  EXPECT_FALSE(bb.at("preserve-environment").boolean);
  EXPECT_EQ(bb.at("filesystem-union-type").string, "overlay");
  EXPECT_EQ(bb.at("user-data").at("debian.dist").string, "sid");
  expect_text_and_json_agree(text_lines({"--info", "-c", "box"}), bb);
}

TEST_F(JsonOutput, InfoOfASessionHasItsPathStateAndProcessIdAsANumber) {
  begin();
  const JsonNode doc = json({"--info", "-c", "session:s1"});
  ASSERT_EQ(doc.at("info").items.size(), 1u);
  const JsonNode& s = doc.at("info").items[0];
  EXPECT_EQ(s.at("namespace").string, "session");
  EXPECT_EQ(s.at("session-id").string, "s1");
  EXPECT_EQ(s.at("original-chroot-name").string, "bb");
  EXPECT_EQ(s.at("selected-chroot-name").string, "box");
  EXPECT_EQ(s.at("path").string, root_.run_dir() + "/mount/s1");
  EXPECT_EQ(s.at("session-state").string, "active");
  ASSERT_EQ(s.at("session-process-id").kind, Kind::kNumber);
  EXPECT_GT(s.at("session-process-id").number, 0);
  ASSERT_EQ(s.at("session-automatic").kind, Kind::kBool);
  EXPECT_FALSE(s.at("session-automatic").boolean);
  ASSERT_EQ(s.at("aliases").kind, Kind::kArray);
  EXPECT_THAT(s.at("aliases").items, IsEmpty());
  expect_text_and_json_agree(text_lines({"--info", "-c", "session:s1"}), s);
}

TEST_F(JsonOutput, InfoAllHasChrootsSessionsAndSourcesInTheTextsOrder) {
  begin();
  const JsonNode doc = json({"--info", "--all"});
  std::vector<std::string> seen;
  for (const auto& o : doc.at("info").items) seen.push_back(o.at("namespace").string + ":" + o.at("name").string);
  EXPECT_THAT(seen, ElementsAre("chroot:bb", "chroot:host", "session:s1", "source:bb"));
}

TEST_F(JsonOutput, LocationIsThePathOrAnEmptyString) {
  begin();
  const JsonNode doc = json({"--location", "-c", "bb", "-c", "host", "-c", "session:s1"});
  const auto& items = doc.at("location").items;
  ASSERT_EQ(items.size(), 3u);
  EXPECT_EQ(items[0].at("name").string, "bb");
  EXPECT_EQ(items[0].at("path").string, "");
  EXPECT_EQ(items[1].at("path").string, tree_);
  EXPECT_EQ(items[2].at("namespace").string, "session");
  EXPECT_EQ(items[2].at("name").string, "s1");
  EXPECT_EQ(items[2].at("path").string, root_.run_dir() + "/mount/s1");
  EXPECT_THAT(text_lines({"--location", "-c", "bb", "-c", "host", "-c", "session:s1"}),
              ElementsAre("", tree_, root_.run_dir() + "/mount/s1"));
}

TEST_F(JsonOutput, ConfigHasEachChrootAndSessionsKeysButNoSourceClones) {
  begin();
  const JsonNode doc = json({"--config", "--all"});
  const auto& groups = doc.at("config").items;
  ASSERT_EQ(groups.size(), 3u);
  EXPECT_EQ(groups[0].at("name").string, "bb");
  EXPECT_EQ(groups[0].at("namespace").string, "chroot");
  EXPECT_EQ(groups[0].at("keys").at("type").string, "directory");
  EXPECT_EQ(groups[0].at("keys").at("aliases").string, "box");  // keyfile values are strings
  EXPECT_EQ(groups[2].at("namespace").string, "session");
  EXPECT_EQ(groups[2].at("name").string, "s1");
  EXPECT_EQ(groups[2].at("keys").at("original-name").string, "bb");
}

TEST_F(JsonOutput, TextFormIsUnchangedWithoutTheOption) {
  auto r = root_.schroot({"--list"});
  EXPECT_EQ(r.out, "chroot:bb\nchroot:box\nchroot:box-source\nchroot:host\nsource:bb\nsource:box\n");
  EXPECT_THAT(text_lines({"--config", "-c", "bb"}).front(), HasSubstr("# schroot configuration generated by schroot"));
}

TEST_F(JsonOutput, OtherActionsRefuseTheOption) {
  auto r = root_.schroot({"-b", "-c", "bb", "--json"});
  EXPECT_EQ(r.status, 1);
  EXPECT_THAT(r.err, HasSubstr("--json is not permitted for the specified action"));
  EXPECT_THAT(r.out, IsEmpty());
  EXPECT_THAT(root_.records(), IsEmpty());
}

}  // namespace
