// Tier 1: what nodeport-cni accepts from a runtime and what it refuses, with
// the CNI error code, before anything is opened or changed.
#include <map>

#include <gtest/gtest.h>

#include "cni_config.hpp"
#include "plugin.hpp"

namespace nodeport::cni {
namespace {

EnvLookup env_of(std::map<std::string, std::string> vars) {
    return [vars](const char* name) -> std::optional<std::string> {
        auto it = vars.find(name);
        return it == vars.end() ? std::nullopt : std::optional<std::string>(it->second);
    };
}

const std::map<std::string, std::string> add_env{
    {"CNI_COMMAND", "ADD"}, {"CNI_CONTAINERID", "c1"}, {"CNI_IFNAME", "eth0"}, {"CNI_NETNS", "/run/netns/c1"}};

// A bridge + host-local result: host-side bridge and veth, then the container's eth0.
const char* prev_result = R"({"cniVersion":"1.0.0",
  "interfaces":[{"name":"cni0"},{"name":"veth1"},{"name":"eth0","sandbox":"/run/netns/c1"}],
  "ips":[{"address":"10.9.0.1/16","interface":0},{"address":"fd00::5/64","interface":2},
         {"address":"10.9.0.5/16","gateway":"10.9.0.1","interface":2}]})";

std::string config(const std::string& mappings, const std::string& extra = "") {
    return R"({"cniVersion":"1.0.0","name":"n","type":"nodeport-cni")" + extra +
           R"(,"runtimeConfig":{"portMappings":)" + mappings + R"(},"prevResult":)" + prev_result + "}";
}

TEST(CniConfig, ReadsMappingsAndTheSandboxSideAddress) {
    auto c = parse_net_config(config(R"([{"hostPort":8080,"containerPort":80},
        {"hostPort":53,"containerPort":5353,"protocol":"UDP","hostIP":""},
        {"hostPort":8080,"containerPort":80,"protocol":"tcp","hostIP":"0.0.0.0"},
        {"hostPort":8080,"containerPort":80,"protocol":"tcp","hostIP":"::"}])"),
                              Command::add);
    ASSERT_TRUE(c) << c.error().msg;
    ASSERT_EQ(c->port_mappings.size(), 2u);  // the repeated 8080 is one mapping
    EXPECT_EQ(to_string(c->port_mappings[0].host), "tcp/8080");
    EXPECT_EQ(to_string(c->port_mappings[1].host), "udp/53");
    EXPECT_EQ(c->port_mappings[1].container_port, 5353);
    // Not the bridge's: the container side's of each family, IPv4 first.
    ASSERT_EQ(c->container_ips.size(), 2u);
    EXPECT_EQ(to_string(c->container_ips[0]), "10.9.0.5");
    EXPECT_EQ(to_string(c->container_ips[1]), "fd00::5");
    EXPECT_EQ(c->pin_dir, default_pin_dir);
    EXPECT_FALSE(c->load);
}

TEST(CniConfig, FirstIpv4WhenNoInterfaceIsInTheSandbox) {
    auto c = parse_net_config(R"({"cniVersion":"0.3.1","runtimeConfig":{"portMappings":[{"hostPort":1,"containerPort":2}]},
        "prevResult":{"ips":[{"version":"4","address":"10.1.2.3/24"}]}})",
                              Command::add);
    ASSERT_TRUE(c) << c.error().msg;
    ASSERT_EQ(c->container_ips.size(), 1u);
    EXPECT_EQ(to_string(c->container_ips[0]), "10.1.2.3");
}

// An IPv6-only container is mapped on its IPv6 address; link-local and
// v4-mapped addresses are no container's address.
TEST(CniConfig, Ipv6OnlyAndDualStackResults) {
    const auto ips = [](const char* prev) {
        auto c = parse_net_config(
            std::string(R"({"cniVersion":"1.0.0","runtimeConfig":{"portMappings":[{"hostPort":1,"containerPort":2}]},
                "prevResult":)") + prev + "}",
            Command::add);
        std::vector<std::string> out;
        if (!c)
            return std::vector<std::string>{"refused: " + c.error().msg};
        for (const auto& a : c->container_ips)
            out.push_back(to_string(a));
        return out;
    };
    EXPECT_EQ(ips(R"({"ips":[{"address":"fd00::1/64"}]})"), std::vector<std::string>{"fd00::1"});
    EXPECT_EQ(ips(R"({"ips":[{"address":"fe80::1/64"},{"address":"::ffff:10.1.1.1/96"},{"address":"fd00::2/64"}]})"),
              std::vector<std::string>{"fd00::2"});
    EXPECT_EQ(ips(R"({"ips":[{"address":"fd00::3/64"},{"address":"10.1.1.3/24"},{"address":"10.1.1.4/24"}]})"),
              (std::vector<std::string>{"10.1.1.3", "fd00::3"}));
    EXPECT_EQ(ips(R"({"ips":[{"address":"fe80::1/64"}]})"),
              std::vector<std::string>{
                  "refused: prevResult has no address for the container (IPv4, or IPv6 other than link-local)"});
}

TEST(CniConfig, ReadsPinDirAndLoad) {
    auto c = parse_net_config(config("[]", R"(,"pinDir":"/sys/fs/bpf/x","load":{"cgroup":"/sys/fs/cgroup/k","interfaces":["eth0"]})"),
                              Command::add);
    ASSERT_TRUE(c) << c.error().msg;
    EXPECT_EQ(c->pin_dir, "/sys/fs/bpf/x");
    ASSERT_TRUE(c->load);
    EXPECT_EQ(c->load->pin_dir, "/sys/fs/bpf/x");
    EXPECT_EQ(*c->load->cgroup, "/sys/fs/cgroup/k");
    EXPECT_EQ(c->load->interfaces, std::vector<std::string>{"eth0"});
}

struct Refused {
    std::string name;
    std::string text;
    Command command;
    Code code;
};

// Named in test output by what it is, not as bytes.
void PrintTo(const Refused& refused, std::ostream* os) { *os << refused.name; }

class CniRefuses : public testing::TestWithParam<Refused> {};

TEST_P(CniRefuses, WithItsCode) {
    auto c = parse_net_config(GetParam().text, GetParam().command);
    ASSERT_FALSE(c);
    EXPECT_EQ(c.error().code, GetParam().code) << c.error().msg;
    EXPECT_FALSE(c.error().msg.empty());
}

INSTANTIATE_TEST_SUITE_P(
    Input, CniRefuses,
    testing::Values(
        Refused{"not_json", "{", Command::add, Code::decode_failure},
        Refused{"not_object", "[]", Command::del, Code::decode_failure},
        Refused{"no_version", R"({"prevResult":{}})", Command::add, Code::invalid_config},
        Refused{"old_version", R"({"cniVersion":"0.2.0"})", Command::add, Code::incompatible_version},
        Refused{"check_before_040", config("[]").replace(15, 5, "0.3.1"), Command::check, Code::incompatible_version},
        Refused{"sctp", config(R"([{"hostPort":80,"containerPort":80,"protocol":"sctp"}])"), Command::add,
                Code::invalid_config},
        Refused{"host_ip", config(R"([{"hostPort":80,"containerPort":80,"hostIP":"127.0.0.1"}])"), Command::add,
                Code::invalid_config},
        Refused{"host_ip_v6", config(R"([{"hostPort":80,"containerPort":80,"hostIP":"::1"}])"), Command::add,
                Code::invalid_config},
        Refused{"conditions_v4", config("[]", R"(,"conditionsV4":["-s","10.0.0.0/8"])"), Command::add,
                Code::invalid_config},
        Refused{"conditions_v6", config("[]", R"(,"conditionsV6":[])"), Command::check, Code::invalid_config},
        Refused{"bad_network_name", config("[]").replace(29, 3, R"("a/b")"), Command::add, Code::invalid_config},
        Refused{"gc_before_110", R"({"cniVersion":"1.0.0","name":"n","cni.dev/valid-attachments":[]})", Command::gc,
                Code::incompatible_version},
        Refused{"gc_no_list", R"({"cniVersion":"1.1.0","name":"n"})", Command::gc, Code::invalid_config},
        Refused{"gc_bad_entry", R"({"cniVersion":"1.1.0","name":"n","cni.dev/valid-attachments":[{"ifname":"e"}]})",
                Command::gc, Code::invalid_config},
        Refused{"gc_no_name", R"({"cniVersion":"1.1.0","cni.dev/valid-attachments":[]})", Command::gc,
                Code::invalid_config},
        Refused{"state_dir_relative", config("[]", R"(,"stateDir":"x")"), Command::add, Code::invalid_config},
        Refused{"port_zero", config(R"([{"hostPort":0,"containerPort":80}])"), Command::add, Code::invalid_config},
        Refused{"port_big", config(R"([{"hostPort":65536,"containerPort":80}])"), Command::add, Code::invalid_config},
        Refused{"port_string", config(R"([{"hostPort":"80","containerPort":80}])"), Command::add, Code::invalid_config},
        Refused{"port_float", config(R"([{"hostPort":80.5,"containerPort":80}])"), Command::add, Code::invalid_config},
        Refused{"no_container_port", config(R"([{"hostPort":80}])"), Command::add, Code::invalid_config},
        Refused{"two_targets", config(R"([{"hostPort":80,"containerPort":80},{"hostPort":80,"containerPort":81}])"),
                Command::add, Code::invalid_config},
        Refused{"mappings_not_array", config(R"({"hostPort":80})"), Command::add, Code::invalid_config},
        Refused{"pin_dir_relative", config("[]", R"(,"pinDir":"bpf/x")"), Command::del, Code::invalid_config},
        Refused{"load_typo", config("[]", R"(,"load":{"cgroups":"/x"})"), Command::add, Code::invalid_config},
        Refused{"load_iface", config("[]", R"(,"load":{"interfaces":["a b"]})"), Command::add, Code::invalid_config},
        Refused{"no_prev_result", R"({"cniVersion":"1.0.0"})", Command::add, Code::invalid_config},
        Refused{"prev_result_ips", R"({"cniVersion":"1.0.0","prevResult":{"ips":{}}})", Command::add,
                Code::invalid_config},
        Refused{"prev_result_address", R"({"cniVersion":"1.0.0","prevResult":{"ips":[{"address":"10.1.1.1"}]}})",
                Command::add, Code::invalid_config},
        Refused{"prev_result_interface",
                R"({"cniVersion":"1.0.0","prevResult":{"ips":[{"address":"10.1.1.1/8","interface":3}]}})",
                Command::add, Code::invalid_config},
        Refused{"link_local_only",
                R"({"cniVersion":"1.0.0","runtimeConfig":{"portMappings":[{"hostPort":1,"containerPort":2}]},
                    "prevResult":{"ips":[{"address":"fe80::1/64"}]}})",
                Command::add, Code::invalid_config},
        Refused{"loopback_backend",
                R"({"cniVersion":"1.0.0","runtimeConfig":{"portMappings":[{"hostPort":1,"containerPort":2}]},
                    "prevResult":{"ips":[{"address":"127.0.0.5/8"}]}})",
                Command::add, Code::invalid_config}),
    [](const auto& info) { return info.param.name; });

TEST(CniConfig, ReadsGcAttachments) {
    auto c = parse_net_config(R"({"cniVersion":"1.1.0","name":"net1","stateDir":"/run/x",
        "cni.dev/valid-attachments":[{"containerID":"c2","ifname":"eth0"},{"containerID":"c1","ifname":"eth0"},
                                     {"containerID":"c1","ifname":"eth1"}]})",
                              Command::gc);
    ASSERT_TRUE(c) << c.error().msg;
    EXPECT_EQ(c->network, "net1");
    EXPECT_EQ(c->state_dir, "/run/x");
    EXPECT_EQ(c->valid_containers, (std::vector<std::string>{"c1", "c2"}));
    EXPECT_TRUE(parse_net_config(R"({"cniVersion":"1.1.0","name":"net1"})", Command::status));
}

TEST(CniConfig, ConditionsNameTheKey) {
    auto c = parse_net_config(config("[]", R"(,"conditionsV4":["-s","10.0.0.0/8"])"), Command::add);
    ASSERT_FALSE(c);
    EXPECT_NE(c.error().msg.find("conditionsV4"), std::string::npos) << c.error().msg;
}

TEST(CniConfig, DelNeedsNoResultNorMappings) {
    EXPECT_TRUE(parse_net_config(R"({"cniVersion":"1.0.0","name":"n"})", Command::del));
}

// The runtime stops deleting a config list at the first DEL that fails: what
// ADD refused (a hostIP, a bad prevResult, an unknown version) must not keep
// the plugins before nodeport-cni from cleaning up.
TEST(CniConfig, DelReadsOnlyThePinDir) {
    for (const char* text : {
             R"({"cniVersion":"1.0.0","runtimeConfig":{"portMappings":[{"hostPort":80,"containerPort":80,"hostIP":"127.0.0.1"}]}})",
             R"({"cniVersion":"1.0.0","prevResult":{"ips":[{"address":"10.1.1.1/8","interface":3}]}})",
             R"({"cniVersion":"9.9.9","load":{"cgroups":"/x"}})",
         })
        EXPECT_TRUE(parse_net_config(text, Command::del)) << text;
    auto config = parse_net_config(R"({"cniVersion":"1.0.0","pinDir":"/sys/fs/bpf/x","prevResult":7})", Command::del);
    ASSERT_TRUE(config);
    EXPECT_EQ(config->pin_dir, "/sys/fs/bpf/x");
}

TEST(CniEnvironment, ChecksTheVariables) {
    EXPECT_TRUE(parse_environment(env_of(add_env)));
    EXPECT_EQ(parse_environment(env_of({})).error().code, Code::invalid_environment);
    EXPECT_EQ(parse_environment(env_of({{"CNI_COMMAND", "INIT"}})).error().code, Code::invalid_environment);
    // GC and STATUS act on the network: no container, interface or namespace.
    EXPECT_TRUE(parse_environment(env_of({{"CNI_COMMAND", "GC"}})));
    EXPECT_TRUE(parse_environment(env_of({{"CNI_COMMAND", "STATUS"}})));
    auto vars = add_env;
    vars["CNI_CONTAINERID"] = "-bad";
    EXPECT_EQ(parse_environment(env_of(vars)).error().code, Code::invalid_environment);
    vars = add_env;
    vars.erase("CNI_NETNS");
    EXPECT_FALSE(parse_environment(env_of(vars)));
    vars["CNI_COMMAND"] = "DEL";  // DEL may come after the namespace is gone
    EXPECT_TRUE(parse_environment(env_of(vars)));
    vars["CNI_CONTAINERID"] = std::string(300, 'a');  // a valid CNI id nodeport cannot store
    auto env = parse_environment(env_of(vars));
    ASSERT_TRUE(env);
    EXPECT_FALSE(env->owner_storable);
}

TEST(CniPlugin, VersionAndErrorReplies) {
    auto version = run(env_of({{"CNI_COMMAND", "VERSION"}}), R"({"cniVersion":"0.4.0"})");
    EXPECT_EQ(version.exit_status, 0);
    EXPECT_EQ(version.stdout_text,
              "{\"cniVersion\":\"0.4.0\",\"supportedVersions\":[\"0.3.0\",\"0.3.1\",\"0.4.0\",\"1.0.0\",\"1.1.0\"]}\n");
    auto bad = run(env_of(add_env), "{");
    EXPECT_NE(bad.exit_status, 0);
    auto reply = nlohmann::json::parse(bad.stdout_text);
    EXPECT_EQ(reply["cniVersion"], "1.1.0");
    EXPECT_EQ(reply["code"], 6);
    // A long container id is refused by ADD, and is nothing to do for DEL.
    auto vars = add_env;
    vars["CNI_CONTAINERID"] = std::string(300, 'a');
    EXPECT_EQ(run(env_of(vars), config(R"([{"hostPort":8080,"containerPort":80}])")).exit_status, 1);
    vars["CNI_COMMAND"] = "DEL";
    EXPECT_EQ(run(env_of(vars), config("[]")).exit_status, 0);
}

TEST(CniPlugin, AddWithoutMappingsPassesTheResultOn) {
    auto reply = run(env_of(add_env), config("[]"));
    ASSERT_EQ(reply.exit_status, 0) << reply.stdout_text;
    EXPECT_EQ(nlohmann::json::parse(reply.stdout_text), nlohmann::json::parse(prev_result));
}

// Issue 22: input a runtime should never send is a CNI error with code 7,
// naming the limit, in a reply of a few hundred bytes; never a crash or an
// empty stdout. A pinDir where nothing is loaded, so a config wrongly taken
// could not change anything.
const std::string nowhere = R"(,"pinDir":"/nonexistent/np-cni-test")";

nlohmann::json refused_reply(const std::string& text, Command command = Command::add) {
    auto env = add_env;
    env["CNI_COMMAND"] = command == Command::del ? "DEL" : "ADD";
    auto reply = run(env_of(env), text);
    EXPECT_EQ(reply.exit_status, 1);
    EXPECT_LT(reply.stdout_text.size(), 1000u) << reply.stdout_text.substr(0, 1000);
    return nlohmann::json::parse(reply.stdout_text);
}

std::string msg_of(const nlohmann::json& reply) { return reply.value("msg", ""); }

TEST(CniInputLimits, DeepNestingIsACniErrorNotACrash) {
    const std::size_t n = 500000;  // enough to overflow the stack of a recursive dump()
    auto host_port = refused_reply(
        config(R"([{"hostPort":)" + std::string(n, '[') + std::string(n, ']') + R"(,"containerPort":80}])", nowhere));
    EXPECT_EQ(host_port["code"], 7);
    EXPECT_TRUE(msg_of(host_port).starts_with("the network config on stdin: runtimeConfig.portMappings[0].hostPort[0]"))
        << msg_of(host_port);
    EXPECT_NE(msg_of(host_port).find("nested deeper than the limit of 64"), std::string::npos) << msg_of(host_port);

    std::string deep_object;
    for (std::size_t i = 0; i < n; ++i)
        deep_object += R"({"a":)";
    deep_object += "1" + std::string(n, '}');
    auto interface = refused_reply(R"({"cniVersion":"1.0.0","name":"n")" + nowhere +
                                   R"(,"runtimeConfig":{"portMappings":[{"hostPort":1,"containerPort":2}]},)"
                                   R"("prevResult":{"ips":[{"address":"10.1.2.3/24","interface":)" +
                                   deep_object + "}]}}");
    EXPECT_EQ(interface["code"], 7);
    EXPECT_NE(msg_of(interface).find("prevResult.ips[0].interface.a.a"), std::string::npos) << msg_of(interface);
    // Within the limit, a nested value is named by its kind, never dumped.
    auto shallow = refused_reply(config(R"([{"hostPort":[[[1]]],"containerPort":80}])", nowhere));
    EXPECT_EQ(msg_of(shallow), "runtimeConfig.portMappings[0].hostPort must be an integer port, not an array");
}

TEST(CniInputLimits, SizeValuesAndStringsAreBounded) {
    auto big = refused_reply(config("[]", nowhere + R"(,"x":)" + std::string(config_limits.bytes, ' ') + "1"));
    EXPECT_EQ(big["code"], 7);
    EXPECT_EQ(msg_of(big), "the network config on stdin: larger than the limit of 16777216 bytes");
    EXPECT_NE(big.value("details", "").find("at most 16777216 bytes"), std::string::npos);

    std::string many = "[0";
    for (std::size_t i = 0; i < config_limits.values; ++i)
        many += ",0";
    auto values = refused_reply(config("[]", nowhere + R"(,"x":)" + many + "]"));
    EXPECT_EQ(values["code"], 7);
    EXPECT_TRUE(msg_of(values).starts_with("the network config on stdin: x[99999")) << msg_of(values);
    EXPECT_TRUE(msg_of(values).ends_with("]: more than the limit of 1000000 values")) << msg_of(values);

    auto string = refused_reply(config("[]", nowhere + R"(,"x":")" + std::string(70000, 'x') + "\""));
    EXPECT_EQ(string["code"], 7);
    EXPECT_EQ(msg_of(string), "the network config on stdin: x: a string of 70000 bytes, longer than the limit of 65536");
    // A string far past the limit is cut while it is read, by its offset.
    auto huge = refused_reply(config("[]", nowhere + R"(,"x":")" + std::string(300 << 20, 'x') + "\""));
    EXPECT_EQ(msg_of(huge), "the network config on stdin: the string at offset 95 is longer than the limit of 65536 bytes");
}

TEST(CniInputLimits, AKeyTwiceIsRefusedEvenByDel) {
    auto mapping = refused_reply(config(R"([{"hostPort":8080,"hostPort":9090,"containerPort":80}])", nowhere));
    EXPECT_EQ(mapping["code"], 7);
    EXPECT_EQ(msg_of(mapping), "the network config on stdin: runtimeConfig.portMappings[0]: 'hostPort' is a key twice");
    auto pin_dir = refused_reply(R"({"cniVersion":"1.0.0","pinDir":"/nonexistent/a","pinDir":"/sys/fs/bpf/nodeport"})",
                                 Command::del);
    EXPECT_EQ(pin_dir["code"], 7);
    EXPECT_EQ(msg_of(pin_dir), "the network config on stdin: 'pinDir' is a key twice");
}

// Issue 22, finding 3: these addresses were taken as 10.8.0.2.
TEST(CniInputLimits, AddressesWithNulsOrBadPrefixesAreRefused) {
    for (const char* address : {R"(10.8.0.2\u0000/16)", "10.8.0.2/33", "10.8.0.2/garbage", "10.8.0.2/", "10.8.0.2/-1",
                                "10.8.0.2/+8", "10.8.0.2/016", "10.8.0.2/16/16", R"(fd00::5\u0000/64)", "fd00::5/129",
                                "fd00::5/x", "fd00::zz/64"}) {
        auto c = parse_net_config(R"({"cniVersion":"1.0.0","runtimeConfig":{"portMappings":[{"hostPort":1,"containerPort":2}]},
                                     "prevResult":{"ips":[{"address":")" + std::string(address) + R"("}]}})",
                                  Command::add);
        ASSERT_FALSE(c) << address;
        EXPECT_EQ(c.error().code, Code::invalid_config) << address;
        EXPECT_EQ(c.error().msg.find('\0'), std::string::npos);
    }
    auto nul = parse_net_config(
        R"({"cniVersion":"1.0.0","prevResult":{"ips":[{"address":"10.8.0.2\u0000/16"}]}})", Command::add);
    EXPECT_EQ(nul.error().msg, R"(prevResult.ips[0].address: '10.8.0.2\x00' is not an IPv4 address)");
    for (const char* address : {"10.8.0.2/0", "10.8.0.2/32", "fd00::5/128", "::ffff:10.1.1.1/96"})
        EXPECT_TRUE(parse_net_config(R"({"cniVersion":"1.0.0","prevResult":{"ips":[{"address":")" +
                                         std::string(address) + R"("}]}})",
                                     Command::add))
            << address;
}

TEST(CniInputLimits, PathsWithNulsAreRefused) {
    auto pin_dir = parse_net_config(R"({"cniVersion":"1.0.0","pinDir":"/sys/fs/bpf/x\u0000/../y"})", Command::del);
    ASSERT_FALSE(pin_dir);
    EXPECT_EQ(pin_dir.error().code, Code::invalid_config);
    auto cgroup = parse_net_config(config("[]", R"(,"load":{"cgroup":"/sys/fs/cgroup/k\u0000/.."})"), Command::add);
    ASSERT_FALSE(cgroup);
    EXPECT_EQ(cgroup.error().msg, R"(load: cgroup: '/sys/fs/cgroup/k\x00/..' has a NUL byte)");
}

// Issue 22, finding 7: the message was escaped where the value was quoted and
// again in the reply ("a\\x1b").
TEST(CniInputLimits, ErrorMessagesAreEscapedOnce) {
    auto reply = refused_reply(R"({"cniVersion":"a\u001b\\","name":"n")" + nowhere + "}");
    EXPECT_EQ(reply["code"], 1);
    EXPECT_EQ(msg_of(reply), R"(cniVersion 'a\x1b\\' is not supported)");
    auto long_version = refused_reply(R"({"cniVersion":")" + std::string(5000, 'v') + "\"" + nowhere + "}");
    EXPECT_EQ(msg_of(long_version), "cniVersion '" + std::string(100, 'v') + "...' (5000 bytes) is not supported");
}

}  // namespace
}  // namespace nodeport::cni
