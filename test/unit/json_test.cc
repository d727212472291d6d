// The JSON writer (src/json.h) and the --json documents built on it (src/output.h):
// real types, escaping, nesting, and documents a strict reader takes back unchanged.
#include "src/json.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdlib>

#include "src/output.h"
#include "test/json_reader.h"

namespace schroot {
namespace {

using json::quote;
using json::Value;
using test::JsonNode;
using test::JsonReader;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

// --- the writer --------------------------------------------------------------------------

TEST(JsonWriter, ScalarsKeepTheirTypes) {
  EXPECT_EQ(Value().dump(), "null\n");
  EXPECT_EQ(Value(true).dump(), "true\n");
  EXPECT_EQ(Value(false).dump(), "false\n");
  EXPECT_EQ(Value(0).dump(), "0\n");
  EXPECT_EQ(Value(static_cast<std::int64_t>(-9223372036854775807LL - 1)).dump(), "-9223372036854775808\n");
  EXPECT_EQ(Value("42").dump(), "\"42\"\n");
}

TEST(JsonWriter, EmptyArrayAndObjectAreBracketsNotEmptyStrings) {
  EXPECT_EQ(Value::array().dump(), "[]\n");
  EXPECT_EQ(Value::object().dump(), "{}\n");
  EXPECT_EQ(Value(std::vector<std::string>{}).dump(), "[]\n");
  EXPECT_EQ(Value(std::map<std::string, std::string>{}).dump(), "{}\n");
}

TEST(JsonWriter, NestsWithTwoSpacesALevelAndKeepsMemberOrder) {
  Value inner = Value::array();
  inner.push(1).push("a").push(Value::array());
  Value doc = Value::object();
  doc.set("z", std::move(inner)).set("a", Value::object()).set("m", std::vector<std::string>{"x"});
  EXPECT_EQ(doc.dump(),
            "{\n"
            "  \"z\": [\n"
            "    1,\n"
            "    \"a\",\n"
            "    []\n"
            "  ],\n"
            "  \"a\": {},\n"
            "  \"m\": [\n"
            "    \"x\"\n"
            "  ]\n"
            "}\n");
}

TEST(JsonWriter, EscapesQuotesBackslashAndControlCharacters) {
  EXPECT_EQ(quote("a\"b\\c"), "\"a\\\"b\\\\c\"");
  EXPECT_EQ(quote("\b\f\n\r\t"), "\"\\b\\f\\n\\r\\t\"");
  EXPECT_EQ(quote(std::string("\x00\x01\x1f\x7f", 4)), "\"\\u0000\\u0001\\u001f\\u007f\"");
  EXPECT_EQ(quote("/"), "\"/\"");
}

TEST(JsonWriter, CopiesWellFormedUtf8) {
  // U+00E9, U+2500, U+1F600 and the largest code point, U+10FFFF.
  const std::string s = "\xc3\xa9\xe2\x94\x80\xf0\x9f\x98\x80\xf4\x8f\xbf\xbf";
  EXPECT_EQ(quote(s), "\"" + s + "\"");
}

TEST(JsonWriter, ReplacesEachByteOfMalformedUtf8WithFffd) {
  EXPECT_EQ(quote("a\xff" "b"), "\"a\\ufffdb\"");                        // never a UTF-8 byte
  EXPECT_EQ(quote("\xe9t\xe9"), "\"\\ufffdt\\ufffd\"");                  // Latin-1
  EXPECT_EQ(quote("\xc0\xaf"), "\"\\ufffd\\ufffd\"");                    // overlong '/'
  EXPECT_EQ(quote("\xe0\x80\xaf"), "\"\\ufffd\\ufffd\\ufffd\"");         // overlong, 3 bytes
  EXPECT_EQ(quote("\xed\xa0\x80"), "\"\\ufffd\\ufffd\\ufffd\"");         // a surrogate, U+D800
  EXPECT_EQ(quote("\xf4\x90\x80\x80"), "\"\\ufffd\\ufffd\\ufffd\\ufffd\"");  // past U+10FFFF
  EXPECT_EQ(quote("\xe2\x94"), "\"\\ufffd\\ufffd\"");                    // cut short at the end
  EXPECT_EQ(quote("\xe2\x94x"), "\"\\ufffd\\ufffdx\"");                  // cut short by ASCII
  EXPECT_EQ(quote("\x80"), "\"\\ufffd\"");                               // a lone continuation
}

TEST(JsonWriter, EveryByteValueRoundTripsOrBecomesFffd) {
  std::string all;
  for (int c = 0; c < 256; ++c) all += static_cast<char>(c);
  Value doc = Value::object();
  doc.set(all, all);
  const JsonNode back = JsonReader::parse(doc.dump());
  std::string expected = all.substr(0, 128);
  for (int c = 128; c < 256; ++c) expected += "\xef\xbf\xbd";  // U+FFFD in UTF-8
  ASSERT_EQ(back.keys.size(), 1u);
  EXPECT_EQ(back.keys[0], expected);
  EXPECT_EQ(back.items[0].string, expected);
}

TEST(JsonWriter, DocumentReadsBackWithItsTypes) {
  Value doc = Value::object();
  Value list = Value::array();
  list.push(Value()).push(true).push(-3).push("tab\there");
  doc.set("list", std::move(list)).set("empty", Value::array()).set("map", std::map<std::string, std::string>{{"k", "v"}});
  const JsonNode back = JsonReader::parse(doc.dump());
  const JsonNode& l = back.at("list");
  ASSERT_EQ(l.kind, JsonNode::Kind::kArray);
  ASSERT_EQ(l.items.size(), 4u);
  EXPECT_EQ(l.items[0].kind, JsonNode::Kind::kNull);
  EXPECT_EQ(l.items[1].kind, JsonNode::Kind::kBool);
  EXPECT_TRUE(l.items[1].boolean);
  EXPECT_EQ(l.items[2].kind, JsonNode::Kind::kNumber);
  EXPECT_EQ(l.items[2].number, -3);
  EXPECT_EQ(l.items[3].string, "tab\there");
  EXPECT_EQ(back.at("empty").kind, JsonNode::Kind::kArray);
  EXPECT_TRUE(back.at("empty").items.empty());
  EXPECT_EQ(back.at("map").at("k").string, "v");
}

// --- the --json documents ----------------------------------------------------------------

std::string fixture(const std::string& name) {
  const char* d = std::getenv("TEST_DATA_DIR");
  return std::string(d ? d : "test/data") + "/conf/" + name;
}

ChrootSet example() { return Config::load_files({fixture("example.conf")}, false); }

TEST(JsonDocument, InfoHasTheTextBlocksFieldsTypedUnderLabelKeys) {
  const JsonNode doc = JsonReader::parse(info_json({chroot_info(example().chroots.at("sid"))}));
  EXPECT_EQ(doc.at("format").number, 1);
  const JsonNode& sid = doc.at("info").items.at(0);
  EXPECT_EQ(sid.at("namespace").string, "chroot");
  EXPECT_EQ(sid.at("name").string, "sid");
  EXPECT_THAT(sid.at("aliases").strings(), ElementsAre("unstable", "default"));
  EXPECT_THAT(sid.at("command-prefix").strings(), ElementsAre("eatmydata"));
  EXPECT_EQ(sid.at("session-cloned").kind, JsonNode::Kind::kBool);
  EXPECT_TRUE(sid.at("session-cloned").boolean);
  EXPECT_EQ(sid.at("user-data").at("debian.dist").kind, JsonNode::Kind::kString);
  EXPECT_EQ(sid.at("source-root-groups").kind, JsonNode::Kind::kArray);
}

TEST(JsonDocument, FieldsTheTextLeavesOutWhenEmptyAreKeptEmpty) {
  const JsonNode host = JsonReader::parse(info_json({chroot_info(example().chroots.at("host"))}))
                            .at("info").items.at(0);
  EXPECT_EQ(host.at("command-prefix").kind, JsonNode::Kind::kArray);
  EXPECT_TRUE(host.at("command-prefix").items.empty());
  EXPECT_EQ(host.at("mount-location").string, "");
  EXPECT_EQ(host.at("path").string, "/");
  EXPECT_THAT(format_chroot_info(example().chroots.at("host")), ::testing::Not(HasSubstr("Command Prefix")));
}

TEST(JsonDocument, ListConfigAndLocationDocuments) {
  const JsonNode list = JsonReader::parse(list_json({"chroot:a", "session:b"}));
  EXPECT_THAT(list.at("list").strings(), ElementsAre("chroot:a", "session:b"));
  EXPECT_EQ(JsonReader::parse(list_json({})).at("list").kind, JsonNode::Kind::kArray);

  const JsonNode config = JsonReader::parse(config_json({{"s-1", {{"type", "directory"}}, Namespace::kSession}}));
  const JsonNode& group = config.at("config").items.at(0);
  EXPECT_EQ(group.at("namespace").string, "session");
  EXPECT_EQ(group.at("name").string, "s-1");
  EXPECT_EQ(group.at("keys").at("type").string, "directory");

  const JsonNode location = JsonReader::parse(location_json({location_of(example().chroots.at("sid"))}));
  EXPECT_EQ(location.at("location").items.at(0).at("name").string, "sid");
  EXPECT_EQ(location.at("location").items.at(0).at("path").string, "");
}

}  // namespace
}  // namespace schroot
