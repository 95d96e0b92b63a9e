// The loader library against real, pinned maps in a private pin directory.
// Nothing is attached: LoadOptions::cgroup stays empty.
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <iostream>

#include <atomic>
#include <filesystem>
#include <set>
#include <thread>

#include <bpf/libbpf.h>

#include "base/map_keys.hpp"
#include "base/pin_dir.hpp"
#include "bpf_available.hpp"
#include "nodeport/abi.h"
#include "nodeport/datapath.hpp"
#include "nodeport/flows.hpp"
#include "nodeport/pin_dir.hpp"
#include "nodeport/port_table.hpp"
#include "nodeport/stats.hpp"
#include "nodeport/status.hpp"

namespace nodeport {
namespace {

namespace fs = std::filesystem;

Mapping mapping(Proto proto, std::uint16_t port, const char* ip, std::uint16_t backend_port, std::string owner = {}) {
    if (std::string_view(ip).find(':') != std::string_view::npos)
        return Mapping{NodePort{proto, port}, Backend{*parse_ipv6(ip, "ip"), backend_port}, std::move(owner)};
    return Mapping{NodePort{proto, port}, Backend{*parse_ipv4(ip, "ip"), backend_port}, std::move(owner)};
}

// Maps and programs in `dir`, nothing attached.
LoadOptions unattached(const fs::path& dir, const char* node_ip) {
    LoadOptions options;
    options.pin_dir = dir;
    options.node_ips = {*parse_node_ip(node_ip)};
    return options;
}

class PortTableTest : public testing::Test {
protected:
    void SetUp() override {
        if (auto why = testing_support::bpf_unavailable(/*needs_bpffs=*/true); !why.empty())
            GTEST_SKIP() << why;
        static std::atomic<int> counter;
        pin_dir_ = fs::path("/sys/fs/bpf") / fmt::format("nodeport-test-{}-{}", getpid(), counter++);
        auto report = load(unattached(pin_dir_, "10.99.0.1"));
        ASSERT_TRUE(report) << report.error().message;
        EXPECT_FALSE(report->reused_maps);
        auto table = PortTable::open(pin_dir_);
        ASSERT_TRUE(table) << table.error().message;
        table_.emplace(std::move(*table));
    }

    void TearDown() override {
        table_.reset();
        if (!pin_dir_.empty() && fs::exists(pin_dir_)) {
            auto gone = unload(pin_dir_);
            EXPECT_TRUE(gone) << gone.error().message;
            std::error_code ignored;
            fs::remove_all(pin_dir_, ignored);  // if unload failed: the pins must not outlive the test
        }
    }

    std::vector<Mapping> list() {
        auto all = table_->list();
        EXPECT_TRUE(all) << all.error().message;
        return all ? *all : std::vector<Mapping>{};
    }

    fs::path pin_dir_;
    std::optional<PortTable> table_;
};

TEST_F(PortTableTest, SetKeepsExactlyOneTargetPerPort) {
    // 25 redeploys of the same node port: the iptables design had 25 rules,
    // the first one stale. Here the last set wins and nothing else remains.
    for (int i = 1; i <= 25; ++i) {
        auto ip = fmt::format("10.8.0.{}", i + 1);
        ASSERT_TRUE(table_->set(mapping(Proto::tcp, 6667, ip.c_str(), 6667, fmt::format("sb-{}", i))));
    }
    EXPECT_EQ(list(), std::vector{mapping(Proto::tcp, 6667, "10.8.0.26", 6667, "sb-25")});
}

// What set tells the caller: the backend it replaced, only when it changed,
// and that the socket iterators ran (load installed them: Linux >= 6.5).
TEST_F(PortTableTest, SetReportsTheBackendItReplaced) {
    auto first = table_->set(mapping(Proto::udp, 6667, "10.8.0.2", 6667, "sb-1"));
    ASSERT_TRUE(first);
    EXPECT_FALSE(first->replaced);
    auto same = table_->set(mapping(Proto::udp, 6667, "10.8.0.2", 6667, "sb-2"));
    ASSERT_TRUE(same);
    EXPECT_FALSE(same->replaced) << "a new owner on the same backend replaces no backend";
    auto moved = table_->set(mapping(Proto::udp, 6667, "10.8.0.3", 6667, "sb-3"));
    ASSERT_TRUE(moved);
    ASSERT_TRUE(moved->replaced);
    EXPECT_EQ(to_string(*moved->replaced), "10.8.0.2:6667");
    EXPECT_EQ(moved->ended.count, 0u) << "no socket of this test was translated";
    EXPECT_EQ(moved->ended.not_checked, "") << "load ran in this namespace, with the iterators";
    auto tcp = table_->set(mapping(Proto::tcp, 6667, "10.8.0.3", 6667), ChangeOptions{.terminate = true});
    ASSERT_TRUE(tcp);
    auto removed = table_->remove(NodePort{Proto::tcp, 6667}, std::nullopt, ChangeOptions{.terminate = true});
    ASSERT_TRUE(removed);
    EXPECT_EQ(removed->outcome, RemoveOutcome::removed);
    EXPECT_EQ(removed->ended.not_checked, "");
}

TEST_F(PortTableTest, SyncMakesTheTableEqualToTheDesiredSet) {
    ASSERT_TRUE(table_->set(mapping(Proto::tcp, 1, "10.8.0.2", 80, "a")));
    ASSERT_TRUE(table_->set(mapping(Proto::tcp, 2, "10.8.0.2", 80, "a")));
    ASSERT_TRUE(table_->set(mapping(Proto::udp, 3, "10.8.0.2", 80, "a")));
    const std::vector want = {mapping(Proto::tcp, 1, "10.8.0.2", 80, "a"), mapping(Proto::tcp, 2, "10.8.0.5", 80, "b"),
                              mapping(Proto::tcp, 9, "10.8.0.6", 90, "c")};
    auto plan = table_->plan(want);
    ASSERT_TRUE(plan);
    EXPECT_EQ(plan->add.size(), 1u);
    EXPECT_EQ(list().size(), 3u) << "plan changes nothing";
    auto synced = table_->sync(want);
    ASSERT_TRUE(synced) << synced.error().message;
    EXPECT_EQ((std::array{synced->added, synced->updated, synced->removed, synced->unchanged}),
              (std::array<std::size_t, 4>{1, 1, 1, 1}));
    EXPECT_EQ(list(), want);
    auto again = table_->sync(want);
    ASSERT_TRUE(again);
    EXPECT_EQ(again->unchanged, 3u) << "a second sync changes nothing";
    ASSERT_TRUE(table_->sync({}));
    EXPECT_EQ(list().size(), 0u);
}

// What a controller pays after its restart: the whole table, then the whole
// table remapped. Printed, not asserted (shared, noisy machines).
TEST_F(PortTableTest, SyncOf65535Entries) {
    auto all = [](const char* ip) {
        std::vector<Mapping> v;
        for (unsigned p = 1; p <= 65535; ++p)
            v.push_back(mapping(p % 2 ? Proto::tcp : Proto::udp, std::uint16_t(p), ip, 80, fmt::format("sb-{}", p)));
        return v;
    };
    for (const auto& [what, want] : {std::pair{"into an empty table", all("10.8.0.2")},
                                     std::pair{"remapping every entry", all("10.8.0.3")}}) {
        auto start = std::chrono::steady_clock::now();
        auto synced = table_->sync(want);
        auto took = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
        ASSERT_TRUE(synced) << synced.error().message;
        EXPECT_EQ(synced->added + synced->updated, 65535u);
        std::cout << fmt::format("sync of 65,535 entries {}: {:.3f} s\n", what, took);
        RecordProperty(what, fmt::format("{:.3f} s", took));
    }
    EXPECT_EQ(list().size(), 65535u);
}

TEST_F(PortTableTest, ProtocolsAreSeparateKeys) {
    ASSERT_TRUE(table_->set(mapping(Proto::tcp, 53, "10.8.0.2", 53)));
    ASSERT_TRUE(table_->set(mapping(Proto::udp, 53, "10.8.0.3", 5353)));
    EXPECT_EQ(list(), (std::vector{mapping(Proto::tcp, 53, "10.8.0.2", 53), mapping(Proto::udp, 53, "10.8.0.3", 5353)}));
    auto udp = table_->get(NodePort{Proto::udp, 53});
    ASSERT_TRUE(udp);
    EXPECT_EQ(*udp, std::vector{mapping(Proto::udp, 53, "10.8.0.3", 5353)});
    auto none = table_->get(NodePort{Proto::udp, 54});
    ASSERT_TRUE(none);
    EXPECT_TRUE(none->empty());
}

// A node port leads to one backend per family: setting the IPv6 one keeps
// the IPv4 one, get and list give both (IPv4 first), del removes both.
TEST_F(PortTableTest, EachFamilyHasItsOwnBackend) {
    ASSERT_TRUE(table_->set(mapping(Proto::tcp, 6667, "10.8.0.2", 6667, "sb-1")));
    auto set6 = table_->set(mapping(Proto::tcp, 6667, "fd00::2", 8080, "sb-1"));
    ASSERT_TRUE(set6) << set6.error().message;
    EXPECT_FALSE(set6->replaced) << "the IPv4 backend is not replaced by the IPv6 one";
    const std::vector both{mapping(Proto::tcp, 6667, "10.8.0.2", 6667, "sb-1"),
                           mapping(Proto::tcp, 6667, "fd00::2", 8080, "sb-1")};
    EXPECT_EQ(list(), both);
    EXPECT_EQ(*table_->get(NodePort{Proto::tcp, 6667}), both);
    auto again = table_->set(mapping(Proto::tcp, 6667, "fd00::3", 8080, "sb-2"));
    ASSERT_TRUE(again && again->replaced);
    EXPECT_EQ(to_string(*again->replaced), "[fd00::2]:8080");
    auto removed = table_->remove(NodePort{Proto::tcp, 6667}, "sb-1");
    ASSERT_TRUE(removed);
    EXPECT_EQ(removed->outcome, RemoveOutcome::removed);
    EXPECT_EQ(removed->removed, std::vector{mapping(Proto::tcp, 6667, "10.8.0.2", 6667, "sb-1")})
        << "sb-1's IPv4 entry goes, sb-2's IPv6 one stays";
    EXPECT_EQ(list(), std::vector{mapping(Proto::tcp, 6667, "fd00::3", 8080, "sb-2")});
    ASSERT_TRUE(table_->set(mapping(Proto::tcp, 6667, "10.8.0.4", 6667, "sb-2")));
    auto owner = table_->remove_owner("sb-2");
    ASSERT_TRUE(owner);
    EXPECT_EQ(owner->removed.size(), 2u) << "del --owner removes what the owner holds in both families";
    EXPECT_TRUE(list().empty());
}

TEST_F(PortTableTest, SyncComparesEachFamilyApart) {
    ASSERT_TRUE(table_->set(mapping(Proto::tcp, 6667, "10.8.0.2", 6667)));
    ASSERT_TRUE(table_->set(mapping(Proto::tcp, 6667, "fd00::2", 6667)));
    const std::vector desired{mapping(Proto::tcp, 6667, "10.8.0.2", 6667), mapping(Proto::tcp, 6667, "fd00::9", 6667),
                              mapping(Proto::udp, 53, "fd00::9", 53)};
    auto synced = table_->sync(desired);
    ASSERT_TRUE(synced) << synced.error().message;
    EXPECT_EQ(synced->unchanged, 1u);
    EXPECT_EQ(synced->updated, 1u);
    EXPECT_EQ(synced->added, 1u);
    EXPECT_EQ(list(), (std::vector{desired[0], desired[1], desired[2]}));
    // The same port twice for one family is refused; once per family is not.
    auto twice = table_->sync({desired[1], mapping(Proto::tcp, 6667, "fd00::8", 6667)});
    ASSERT_FALSE(twice);
    EXPECT_NE(twice.error().message.find("tcp/6667 (IPv6) is listed twice"), std::string::npos)
        << twice.error().message;
    // Scoped to IPv4 (the C ABI's sync): the IPv6 entries stay.
    auto v4 = table_->sync({mapping(Proto::tcp, 7000, "10.8.0.3", 7000)}, {}, Family::ipv4);
    ASSERT_TRUE(v4) << v4.error().message;
    EXPECT_EQ(v4->removed, 1u);
    EXPECT_EQ(list(), (std::vector{desired[1], mapping(Proto::tcp, 7000, "10.8.0.3", 7000), desired[2]}));
    EXPECT_FALSE(table_->sync({desired[1]}, {}, Family::ipv4)) << "an IPv6 entry in an IPv4 sync is bad input";
}

// Both families share the table's 131,072 entries: a sync from 70,000 IPv4
// mappings to the same ports over IPv6 cannot add first and remove last (the
// adds would run out of room at every retry), so it removes first.
TEST_F(PortTableTest, SyncThatCannotHoldOldAndNewTogetherRemovesFirst) {
    std::vector<Mapping> v4, v6;
    for (unsigned i = 0; i < 70000; ++i) {
        const NodePort port{i < 65535 ? Proto::tcp : Proto::udp, static_cast<std::uint16_t>(i % 65535 + 1)};
        v4.push_back(Mapping{port, *parse_backend("10.8.0.2:80"), {}});
        v6.push_back(Mapping{port, *parse_backend("[fd00::2]:80"), {}});
    }
    ASSERT_TRUE(table_->sync(v4));
    auto synced = table_->sync(v6);
    ASSERT_TRUE(synced) << synced.error().message;
    EXPECT_EQ(synced->added, 70000u);
    EXPECT_EQ(synced->removed, 70000u);
    auto now = list();
    ASSERT_EQ(now.size(), 70000u);
    EXPECT_TRUE(std::ranges::all_of(now, [](const Mapping& m) { return m.family() == Family::ipv6; }));
}

// A table opened before another build's `load` took the maps over (ABI 3
// pins are adopted in place) refuses to write: node_config says another ABI.
TEST_F(PortTableTest, AWriteAfterAnotherAbiTookTheMapsOverIsRefused) {
    ASSERT_TRUE(table_->set(mapping(Proto::tcp, 6667, "10.8.0.2", 6667)));
    Fd config(bpf_obj_get((pin_dir_ / "node_config").c_str()));
    ASSERT_TRUE(config.valid());
    __u32 zero = 0;
    np_config cfg{};
    ASSERT_EQ(bpf_map_lookup_elem(config.get(), &zero, &cfg), 0);
    np_config other = cfg;
    other.abi_version = NODEPORT_ABI_VERSION + 1;
    ASSERT_EQ(bpf_map_update_elem(config.get(), &zero, &other, BPF_EXIST), 0);
    auto refused = table_->set(mapping(Proto::tcp, 6668, "10.8.0.2", 6668));
    ASSERT_FALSE(refused);
    EXPECT_EQ(refused.error().kind, ErrorKind::abi_mismatch) << refused.error().message;
    EXPECT_NE(refused.error().message.find("were taken over by a nodeport of map ABI"), std::string::npos)
        << refused.error().message;
    ASSERT_EQ(bpf_map_update_elem(config.get(), &zero, &cfg, BPF_EXIST), 0);
    EXPECT_EQ(list(), std::vector{mapping(Proto::tcp, 6667, "10.8.0.2", 6667)}) << "nothing was written";
}

TEST_F(PortTableTest, RemoveWithOwnerOnlyDeletesItsOwnEntry) {
    ASSERT_TRUE(table_->set(mapping(Proto::tcp, 6667, "10.8.0.2", 6667, "sb-1")));
    // A redeploy overwrites the port, then the old sandbox's destroy runs late.
    ASSERT_TRUE(table_->set(mapping(Proto::tcp, 6667, "10.8.0.3", 6667, "sb-2")));
    auto late = table_->remove(NodePort{Proto::tcp, 6667}, "sb-1");
    ASSERT_TRUE(late);
    EXPECT_EQ(late->outcome, RemoveOutcome::held_by_other);
    EXPECT_EQ(late->holder, "sb-2");
    EXPECT_EQ(list(), std::vector{mapping(Proto::tcp, 6667, "10.8.0.3", 6667, "sb-2")});

    auto own = table_->remove(NodePort{Proto::tcp, 6667}, "sb-2");
    ASSERT_TRUE(own);
    EXPECT_EQ(own->outcome, RemoveOutcome::removed);
    EXPECT_TRUE(list().empty());

    auto again = table_->remove(NodePort{Proto::tcp, 6667}, "sb-2");
    ASSERT_TRUE(again);
    EXPECT_EQ(again->outcome, RemoveOutcome::not_mapped);
}

TEST_F(PortTableTest, RemoveWithoutOwnerDeletesWhateverIsThere) {
    ASSERT_TRUE(table_->set(mapping(Proto::udp, 9000, "10.8.0.2", 9000, "sb-1")));
    auto result = table_->remove(NodePort{Proto::udp, 9000});
    ASSERT_TRUE(result);
    EXPECT_EQ(result->outcome, RemoveOutcome::removed);
    EXPECT_TRUE(list().empty());
}

TEST_F(PortTableTest, RemoveOwnerRacingRedeployNeverDeletesTheNewOwner) {
    // A redeploy moves three ports to a new owner, one by one, while the old
    // owner's teardown runs: whatever the interleaving, the new owner keeps
    // every port it took.
    constexpr int rounds = 300;
    std::atomic<int> published{0};
    std::thread deployer([&] {
        auto table = PortTable::open(pin_dir_);
        for (int i = 1; i <= rounds; ++i) {
            for (std::uint16_t port : {7100, 7101, 7102})
                ASSERT_TRUE(table->set(mapping(Proto::tcp, port, "10.8.0.2", port, fmt::format("sb-{}", i))));
            published = i;
        }
    });
    std::thread destroyer([&] {
        auto table = PortTable::open(pin_dir_);
        for (int seen = 0; seen < rounds;) {
            int now = published;
            if (now > 1 && now != seen) {
                auto removed = table->remove_owner(fmt::format("sb-{}", now - 1));
                ASSERT_TRUE(removed);
                for (const auto& m : removed->removed)
                    ASSERT_EQ(m.owner, fmt::format("sb-{}", now - 1));
            }
            seen = now;
        }
    });
    deployer.join();
    destroyer.join();
    const auto last = fmt::format("sb-{}", rounds);
    EXPECT_EQ(list(), (std::vector{mapping(Proto::tcp, 7100, "10.8.0.2", 7100, last),
                                   mapping(Proto::tcp, 7101, "10.8.0.2", 7101, last),
                                   mapping(Proto::tcp, 7102, "10.8.0.2", 7102, last)}));
}

TEST_F(PortTableTest, FlushRemovesEverything) {
    for (std::uint16_t port = 1000; port < 1100; ++port)
        ASSERT_TRUE(table_->set(mapping(Proto::tcp, port, "10.8.0.2", port)));
    auto flushed = table_->flush();
    ASSERT_TRUE(flushed);
    EXPECT_EQ(*flushed, 100u);
    EXPECT_TRUE(list().empty());
}

TEST_F(PortTableTest, LoadAgainKeepsMappings) {
    ASSERT_TRUE(table_->set(mapping(Proto::tcp, 6667, "10.8.0.2", 6667, "sb-1")));
    auto again = load(unattached(pin_dir_, "10.99.0.2"));
    ASSERT_TRUE(again) << again.error().message;
    EXPECT_TRUE(again->reused_maps);
    EXPECT_EQ(list(), std::vector{mapping(Proto::tcp, 6667, "10.8.0.2", 6667, "sb-1")});
}

// A controller opens the pin directory once (PinDir) and hands it to every
// reader and writer. A table keeps a handle of its own: it outlives the
// caller's, and its writers' flock is apart from whatever the caller's
// handle holds (a dup would share that lock and let a writer through).
TEST_F(PortTableTest, OneOpenedPinDirServesTablesAndReaders) {
    std::optional<PortTable> table;
    {
        auto dir = PinDir::open(pin_dir_);
        ASSERT_TRUE(dir) << dir.error().message;
        auto opened = PortTable::open(*dir, std::chrono::milliseconds{100});
        ASSERT_TRUE(opened) << opened.error().message;
        table.emplace(std::move(*opened));
        ASSERT_TRUE(table->set(mapping(Proto::tcp, 6667, "10.8.0.2", 6667, "sb-1")));
        auto stats = read_stats(*dir);
        ASSERT_TRUE(stats) << stats.error().message;
        EXPECT_EQ(stats->ports.size(), 1u);
        auto status = read_status(*dir);
        ASSERT_TRUE(status) << status.error().message;
        EXPECT_EQ(status->ports, 1u);
        auto flows = list_flows(*dir);
        ASSERT_TRUE(flows) << flows.error().message;

        auto held = pin_dir::Lock::take(dir->fd(), std::chrono::milliseconds{0});
        ASSERT_TRUE(held) << held.error().message;
        auto blocked = table->set(mapping(Proto::tcp, 6668, "10.8.0.2", 6668, "sb-1"));
        ASSERT_FALSE(blocked);
        EXPECT_EQ(blocked.error().kind, ErrorKind::busy) << blocked.error().message;
    }
    ASSERT_TRUE(table->set(mapping(Proto::tcp, 6668, "10.8.0.2", 6668, "sb-1")));
    EXPECT_EQ(list().size(), 2u);
}

TEST_F(PortTableTest, RefreshReplacesNodeAddresses) {
    auto addrs = refresh(pin_dir_, {*parse_node_ip("10.99.0.7"), *parse_node_ip("10.99.0.8")});
    ASSERT_TRUE(addrs) << addrs.error().message;
    int fd = bpf_obj_get((pin_dir_ / "node_addrs").c_str());
    ASSERT_GE(fd, 0);
    auto keys = map_keys<np_node_addr>(fd, "node_addrs");
    close(fd);
    ASSERT_TRUE(keys);
    std::set<std::uint32_t> in_map;
    for (const auto& key : *keys)
        in_map.insert(key.addr_be[0]);
    EXPECT_EQ(in_map, (std::set{parse_ipv4("10.99.0.7", "")->addr_be, parse_ipv4("10.99.0.8", "")->addr_be}));
}

TEST_F(PortTableTest, RefusesPinnedMapsOfAnotherAbi) {
    int fd = bpf_obj_get((pin_dir_ / "node_config").c_str());
    ASSERT_GE(fd, 0);
    __u32 zero = 0;
    np_config cfg{};
    ASSERT_EQ(bpf_map_lookup_elem(fd, &zero, &cfg), 0);
    np_config future = cfg;
    future.abi_version = NODEPORT_ABI_VERSION + 1;
    ASSERT_EQ(bpf_map_update_elem(fd, &zero, &future, BPF_ANY), 0);

    auto refused = load(unattached(pin_dir_, "10.99.0.1"));
    ASSERT_FALSE(refused);
    EXPECT_NE(refused.error().message.find(fmt::format("map ABI v{}", NODEPORT_ABI_VERSION + 1)), std::string::npos)
        << refused.error().message;
    EXPECT_EQ(refused.error().kind, ErrorKind::abi_mismatch) << refused.error().message;
    auto not_ours = PortTable::open(pin_dir_);
    ASSERT_FALSE(not_ours);
    EXPECT_EQ(not_ours.error().kind, ErrorKind::abi_mismatch) << not_ours.error().message;

    ASSERT_EQ(bpf_map_update_elem(fd, &zero, &cfg, BPF_ANY), 0);
    close(fd);
}

// NP_CONFIG_SOCK_END_PENDING is set only while a write's socket-end targets
// wait, so a write never walks the empty target map (which cost every set
// ~100 us); a target a killed write left is still found, since the flag
// went up before it was recorded.
TEST_F(PortTableTest, SocketWalkIsMarkedPendingOnlyWhileTargetsWait) {
    int config = bpf_obj_get((pin_dir_ / "node_config").c_str());
    int targets = bpf_obj_get((pin_dir_ / "sock_end_targets").c_str());
    ASSERT_GE(config, 0);
    ASSERT_GE(targets, 0);
    __u32 zero = 0;
    auto pending = [&] {
        np_config cfg{};
        EXPECT_EQ(bpf_map_lookup_elem(config, &zero, &cfg), 0);
        return (cfg.flags & NP_CONFIG_SOCK_END_PENDING) != 0;
    };
    EXPECT_FALSE(pending()) << "load's own walk found nothing left";
    ASSERT_TRUE(table_->set(mapping(Proto::udp, 6667, "10.8.0.2", 6667, "sb-1")));
    ASSERT_TRUE(table_->set(mapping(Proto::udp, 6667, "10.8.0.3", 6667, "sb-2")));
    EXPECT_FALSE(pending()) << "the replaced backend's walk is done";

    // What a write killed after recording leaves: the flag and a target.
    np_config cfg{};
    ASSERT_EQ(bpf_map_lookup_elem(config, &zero, &cfg), 0);
    cfg.flags |= NP_CONFIG_SOCK_END_PENDING;
    ASSERT_EQ(bpf_map_update_elem(config, &zero, &cfg, BPF_EXIST), 0);
    np_sock_end_target left{};
    left.backend_addr_be = parse_ipv4("10.8.0.9", "")->addr_be;
    left.backend_port_be = htons(6667);
    left.node_port_be = htons(6667);
    left.proto = IPPROTO_UDP;
    const __u8 unused = 0;
    ASSERT_EQ(bpf_map_update_elem(targets, &left, &unused, BPF_ANY), 0);
    auto next = table_->set(mapping(Proto::udp, 7000, "10.8.0.4", 7000, "sb-3"));
    ASSERT_TRUE(next) << next.error().message;
    EXPECT_EQ(next->ended.resumed, 1u) << "the next write walks what the killed one left";
    EXPECT_FALSE(pending());
    close(config);
    close(targets);
}

TEST_F(PortTableTest, ConcurrentWritersLoseNoUpdate) {
    // 8 writers, each with its own PortTable (its own flock), 500 ports each.
    constexpr int writers = 8;
    constexpr int ports_each = 500;
    std::vector<std::thread> threads;
    std::atomic<int> failures{0};
    for (int w = 0; w < writers; ++w) {
        threads.emplace_back([&, w] {
            auto table = PortTable::open(pin_dir_);
            if (!table) {
                ++failures;
                return;
            }
            for (int i = 0; i < ports_each; ++i) {
                auto port = static_cast<std::uint16_t>(20000 + w * ports_each + i);
                if (!table->set(mapping(Proto::tcp, port, "10.8.0.2", port, fmt::format("w{}", w))))
                    ++failures;
            }
        });
    }
    for (auto& t : threads)
        t.join();
    EXPECT_EQ(failures, 0);
    EXPECT_EQ(list().size(), static_cast<std::size_t>(writers * ports_each));
}

TEST_F(PortTableTest, OwnerCheckedRemoveRacingRedeployNeverDeletesTheNewOwner) {
    // One thread redeploys the port (set by a new owner each time) while
    // another deletes on behalf of the previous owner. Whatever the
    // interleaving, the entry that remains belongs to the last owner set.
    constexpr int rounds = 2000;
    std::atomic<int> published{0};
    std::thread deployer([&] {
        auto table = PortTable::open(pin_dir_);
        for (int i = 1; i <= rounds; ++i) {
            ASSERT_TRUE(table->set(mapping(Proto::tcp, 7000, "10.8.0.2", 7000, fmt::format("sb-{}", i))));
            published = i;
        }
    });
    std::thread destroyer([&] {
        auto table = PortTable::open(pin_dir_);
        for (int seen = 0; seen < rounds;) {
            int now = published;
            if (now > 1 && now != seen) {
                ASSERT_TRUE(table->remove(NodePort{Proto::tcp, 7000}, fmt::format("sb-{}", now - 1)));
            }
            seen = now;
        }
    });
    deployer.join();
    destroyer.join();
    EXPECT_EQ(list(), std::vector{mapping(Proto::tcp, 7000, "10.8.0.2", 7000, fmt::format("sb-{}", rounds))});
}

// The library is the trust boundary: a Mapping built by hand is checked as
// the CLI's parsers check theirs, refused with EINVAL, and nothing changes.
TEST_F(PortTableTest, SetAndSyncRefuseWhatTheCliRefuses) {
    const auto keep = mapping(Proto::tcp, 80, "10.8.0.2", 80, "keep");
    ASSERT_TRUE(table_->set(keep));
    const std::vector<std::pair<Mapping, std::string>> bad = {
        {mapping(Proto::tcp, 0, "10.8.0.2", 80), "node port"},
        {mapping(Proto::tcp, 81, "10.8.0.2", 0), "backend port"},
        {mapping(Proto::tcp, 81, "127.0.0.1", 80), "backend address"},
        {mapping(Proto::tcp, 81, "0.0.0.0", 80), "backend address"},
        {mapping(Proto::tcp, 81, "224.0.0.1", 80), "backend address"},
        {mapping(Proto::tcp, 81, "10.8.0.2", 80, std::string(256, 'a')), "owner"},
        {mapping(Proto::tcp, 81, "10.8.0.2", 80, "sb 1"), "owner"},
        {mapping(Proto::tcp, 81, "10.8.0.2", 80, std::string("sb\0x", 4)), "owner"},
        {Mapping{NodePort{static_cast<Proto>(1), 81}, Backend{*parse_ipv4("10.8.0.2", "ip"), 80}, ""}, "protocol"},
    };
    for (const auto& [m, field] : bad) {
        auto set = table_->set(m);
        ASSERT_FALSE(set) << to_string(m.node_port) << " " << to_string(m.backend) << " owner '" << m.owner << "'";
        EXPECT_EQ(set.error().errno_value, EINVAL);
        EXPECT_EQ(set.error().kind, ErrorKind::bad_input);
        EXPECT_EQ(set.error().field, field);
        EXPECT_NE(set.error().message.find(field), std::string::npos) << set.error().message;
        auto synced = table_->sync({keep, m});
        ASSERT_FALSE(synced);
        EXPECT_NE(synced.error().message.find("entry 1: " + field), std::string::npos) << synced.error().message;
        EXPECT_FALSE(table_->plan({m}));
    }
    auto twice = table_->sync({keep, mapping(Proto::tcp, 80, "10.8.0.3", 80)});
    ASSERT_FALSE(twice);
    EXPECT_NE(twice.error().message.find("tcp/80 is listed twice"), std::string::npos) << twice.error().message;
    EXPECT_FALSE(table_->remove(NodePort{Proto::tcp, 80}, std::string(256, 'a')));
    EXPECT_FALSE(table_->remove(NodePort{Proto::tcp, 80}, ""));
    EXPECT_FALSE(table_->remove_owner(""));
    EXPECT_EQ(list(), std::vector{keep}) << "refused writes changed nothing";
}

// load and refresh check LoadOptions as the CLI checks its options, and
// refuse before anything changes: no pin directory is made.
TEST_F(PortTableTest, LoadAndRefreshRefuseWhatTheCliRefuses) {
    const fs::path fresh = pin_dir_.string() + "-fresh";
    auto options = [&] { return unattached(fresh, "10.99.0.1"); };
    std::vector<std::pair<LoadOptions, std::string>> bad;
    for (const char* ip : {"127.0.0.1", "0.0.0.0", "224.0.0.1", "255.255.255.255"}) {
        auto o = options();
        o.node_ips = {Ipv4{*parse_ipv4(ip, "ip")}};
        bad.emplace_back(o, "node-ip");
    }
    auto twice = options();
    twice.node_ips.push_back(twice.node_ips.front());
    bad.emplace_back(twice, "node-ip: '10.99.0.1' is given twice");
    for (const char* name : {"", "a/b", "a:b", "a b", "0123456789abcdef", ".", ".."}) {
        auto o = options();
        o.interfaces = {name};
        bad.emplace_back(o, "iface");
    }
    auto same_iface = options();
    same_iface.interfaces = {"ext0", "ext0"};
    bad.emplace_back(same_iface, "iface: 'ext0' is given twice");
    // The checks the CLI's --iface and --exclude run are the library's own
    // (check_interface_choice), so a caller filling LoadOptions meets them
    // too. (Loopback, refused by check_interfaces_here, is cli_test's: this
    // test runs in the node's own network namespace.)
    auto names_with_all = options();
    names_with_all.interface_choice = InterfaceChoice{InterfaceChoice::Kind::all, {"ext0"}, {}};
    bad.emplace_back(names_with_all, "iface: interface names are given only to choose exactly those");
    auto exclude_without_all = options();
    exclude_without_all.interface_choice = InterfaceChoice{InterfaceChoice::Kind::named, {"ext0"}, {"br*"}};
    bad.emplace_back(exclude_without_all, "exclude: only with --iface all");
    auto zero = options();
    zero.timeouts.udp = std::chrono::seconds{0};
    bad.emplace_back(zero, "udp-timeout");
    auto long_timeout = options();
    long_timeout.timeouts.tcp_established = std::chrono::hours{24 * 31};
    bad.emplace_back(long_timeout, "tcp-timeout");
    auto negative_wait = options();
    negative_wait.lock_wait = std::chrono::milliseconds{-1};
    bad.emplace_back(negative_wait, "wait");
    for (const auto& [o, what] : bad) {
        auto report = load(o);
        ASSERT_FALSE(report) << what;
        EXPECT_EQ(report.error().errno_value, EINVAL) << report.error().message;
        EXPECT_EQ(report.error().kind, ErrorKind::bad_input) << report.error().message;
        EXPECT_TRUE(!report.error().field.empty() && what.starts_with(report.error().field))
            << report.error().field << " / " << what;
        EXPECT_NE(report.error().message.find("bad input: " + what), std::string::npos) << report.error().message;
        EXPECT_FALSE(fs::exists(fresh)) << what;
    }
    auto refreshed = refresh(pin_dir_, {*parse_ipv4("127.0.0.1", "ip")});
    ASSERT_FALSE(refreshed);
    EXPECT_EQ(refreshed.error().errno_value, EINVAL) << refreshed.error().message;
}

// The longest owner the map stores is hashed and stored whole, so remove
// by that owner works (a longer one, once cut when stored, never could).
TEST_F(PortTableTest, LongestOwnerIsStoredWholeAndRemovable) {
    const std::string owner(NP_MAX_OWNER_LEN, 'o');
    ASSERT_TRUE(table_->set(mapping(Proto::udp, 90, "10.8.0.2", 90, owner)));
    EXPECT_EQ(list(), std::vector{mapping(Proto::udp, 90, "10.8.0.2", 90, owner)});
    auto removed = table_->remove(NodePort{Proto::udp, 90}, owner);
    ASSERT_TRUE(removed) << removed.error().message;
    EXPECT_EQ(removed->outcome, RemoveOutcome::removed);
}

TEST_F(PortTableTest, RemoveOwnerRemovesOnlyThatOwnersPorts) {
    ASSERT_TRUE(table_->set(mapping(Proto::tcp, 1, "10.8.0.2", 80, "a")));
    ASSERT_TRUE(table_->set(mapping(Proto::udp, 1, "10.8.0.2", 80, "a")));
    ASSERT_TRUE(table_->set(mapping(Proto::tcp, 2, "10.8.0.3", 80, "ab")));
    ASSERT_TRUE(table_->set(mapping(Proto::tcp, 3, "10.8.0.3", 80, "b")));
    ASSERT_TRUE(table_->set(mapping(Proto::tcp, 4, "10.8.0.3", 80)));
    auto removed = table_->remove_owner("a");
    ASSERT_TRUE(removed) << removed.error().message;
    EXPECT_EQ(removed->removed, (std::vector{mapping(Proto::tcp, 1, "10.8.0.2", 80, "a"),
                                             mapping(Proto::udp, 1, "10.8.0.2", 80, "a")}));
    EXPECT_EQ(list(), (std::vector{mapping(Proto::tcp, 2, "10.8.0.3", 80, "ab"), mapping(Proto::tcp, 3, "10.8.0.3", 80, "b"),
                                   mapping(Proto::tcp, 4, "10.8.0.3", 80)}));
    auto none = table_->remove_owner("a");
    ASSERT_TRUE(none);
    EXPECT_TRUE(none->removed.empty());
}

// remove_owner names, beside what it removed, the owner's backends that
// earlier writes replaced or removed, once, and not one given back since (in
// `removed` alone). go/nodeport/drain_test.go checks Go the same way.
TEST_F(PortTableTest, RemoveOwnerNamesBackendsReplacedEarlier) {
    ASSERT_TRUE(table_->set(mapping(Proto::tcp, 7200, "10.8.0.60", 7200, "sb-old")));
    ASSERT_TRUE(table_->set(mapping(Proto::tcp, 7200, "10.8.0.61", 7200, "sb-new")));  // the redeploy
    ASSERT_TRUE(table_->set(mapping(Proto::udp, 7201, "10.8.0.60", 7201, "sb-old")));
    ASSERT_TRUE(table_->remove(NodePort{Proto::udp, 7201}, std::nullopt));  // removed by someone else
    ASSERT_TRUE(table_->set(mapping(Proto::tcp, 7202, "10.8.0.60", 7202, "sb-old")));
    ASSERT_TRUE(table_->set(mapping(Proto::tcp, 7202, "10.8.0.61", 7202, "sb-new")));
    ASSERT_TRUE(table_->set(mapping(Proto::tcp, 7202, "10.8.0.60", 7202, "sb-old")));  // given back
    auto result = table_->remove_owner("sb-old");
    ASSERT_TRUE(result) << result.error().message;
    EXPECT_EQ(result->removed, std::vector{mapping(Proto::tcp, 7202, "10.8.0.60", 7202, "sb-old")});
    EXPECT_EQ(result->replaced_earlier, (std::vector{mapping(Proto::tcp, 7200, "10.8.0.60", 7200, "sb-old"),
                                                     mapping(Proto::udp, 7201, "10.8.0.60", 7201, "sb-old")}));
    auto again = table_->remove_owner("sb-old");
    ASSERT_TRUE(again);
    EXPECT_TRUE(again->removed.empty() && again->replaced_earlier.empty()) << "the records were taken";
}

// The same for IPv6 backends, recorded in `replaced_backends6`: a port's
// backends of both families, replaced by a redeploy, are both named.
TEST_F(PortTableTest, RemoveOwnerNamesIPv6BackendsReplacedEarlier) {
    ASSERT_TRUE(table_->set(mapping(Proto::tcp, 7210, "10.8.0.60", 7210, "sb-old")));
    ASSERT_TRUE(table_->set(mapping(Proto::tcp, 7210, "fd00::60", 7210, "sb-old")));
    ASSERT_TRUE(table_->set(mapping(Proto::tcp, 7210, "10.8.0.61", 7210, "sb-new")));  // the redeploy
    ASSERT_TRUE(table_->set(mapping(Proto::tcp, 7210, "fd00::61", 7210, "sb-new")));
    ASSERT_TRUE(table_->set(mapping(Proto::udp, 7211, "fd00::60", 7211, "sb-old")));
    ASSERT_TRUE(table_->set(mapping(Proto::udp, 7211, "fd00::61", 7211, "sb-new")));
    ASSERT_TRUE(table_->set(mapping(Proto::udp, 7211, "fd00::60", 7211, "sb-old")));  // given back
    auto result = table_->remove_owner("sb-old");
    ASSERT_TRUE(result) << result.error().message;
    EXPECT_EQ(result->removed, std::vector{mapping(Proto::udp, 7211, "fd00::60", 7211, "sb-old")});
    EXPECT_EQ(result->replaced_earlier, (std::vector{mapping(Proto::tcp, 7210, "10.8.0.60", 7210, "sb-old"),
                                                     mapping(Proto::tcp, 7210, "fd00::60", 7210, "sb-old")}));
    auto again = table_->remove_owner("sb-old");
    ASSERT_TRUE(again);
    EXPECT_TRUE(again->removed.empty() && again->replaced_earlier.empty()) << "the records were taken";
}

// Pins of a load before `replaced_backends6`: IPv6 backends are not
// recorded, IPv4 ones still are.
TEST_F(PortTableTest, PinsWithoutReplacedBackends6RecordIPv4Only) {
    table_.reset();
    // Moved aside for the test (bpffs refuses a name with a dot).
    fs::rename(pin_dir_ / "replaced_backends6", pin_dir_ / "replaced_backends6_away");
    auto table = PortTable::open(pin_dir_);
    ASSERT_TRUE(table) << table.error().message;
    ASSERT_TRUE(table->set(mapping(Proto::tcp, 7220, "10.8.0.60", 7220, "sb-old")));
    ASSERT_TRUE(table->set(mapping(Proto::tcp, 7220, "fd00::60", 7220, "sb-old")));
    ASSERT_TRUE(table->set(mapping(Proto::tcp, 7220, "10.8.0.61", 7220, "sb-new")));
    ASSERT_TRUE(table->set(mapping(Proto::tcp, 7220, "fd00::61", 7220, "sb-new")));
    auto result = table->remove_owner("sb-old");
    ASSERT_TRUE(result) << result.error().message;
    EXPECT_EQ(result->replaced_earlier, std::vector{mapping(Proto::tcp, 7220, "10.8.0.60", 7220, "sb-old")});
    fs::rename(pin_dir_ / "replaced_backends6_away", pin_dir_ / "replaced_backends6");
}

// The node's connections to IPv6 backends are counted by iterators of their
// own (np_count6_*); with pins of a load before them, the IPv4 count stands
// and only an IPv6 backend's count says it was not made.
TEST_F(PortTableTest, CountsWithoutTheIPv6IteratorsSayIPv6WasNotCounted) {
    const Backend v4{*parse_ipv4("10.8.0.70", "ip"), 7230}, v6{*parse_ipv6("fd00::70", "ip"), 7230};
    auto counted = table_->connections();
    ASSERT_TRUE(counted) << counted.error().message;
    EXPECT_EQ(counted->local_not_counted, "");
    EXPECT_EQ(counted->local_not_counted_of(Family::ipv6), "");
    auto drained = table_->drain(v6, std::chrono::milliseconds(0));
    ASSERT_TRUE(drained) << drained.error().message;
    EXPECT_TRUE(drained->drained && drained->local_not_counted.empty()) << drained->local_not_counted;

    // Moved aside, not removed, and put back: bpffs refuses a name with a dot.
    const fs::path pin = pin_dir_ / "links" / "np_count6_tcp", away = pin_dir_ / "links" / "np_count6_tcp_away";
    fs::rename(pin, away);
    counted = table_->connections();
    drained = table_->drain(v6, std::chrono::milliseconds(0));
    auto drained4 = table_->drain(v4, std::chrono::milliseconds(0));
    auto both = table_->drain(std::vector{v4, v6}, std::chrono::milliseconds(0));
    fs::rename(away, pin);
    ASSERT_TRUE(counted && drained && drained4 && both);
    EXPECT_EQ(counted->local_not_counted, "") << "the IPv4 count stands";
    EXPECT_EQ(counted->local_not_counted_of(Family::ipv4), "");
    EXPECT_NE(counted->local_not_counted_of(Family::ipv6).find("IPv6 backends were not counted"), std::string::npos)
        << counted->local_not_counted_of(Family::ipv6);
    EXPECT_NE(drained->local_not_counted.find("predate"), std::string::npos) << drained->local_not_counted;
    EXPECT_EQ(drained4->local_not_counted, "") << "an IPv4 backend's drain says nothing of IPv6";
    EXPECT_EQ(both->local_not_counted, drained->local_not_counted);
}

// libbpf's print callback belongs to the process: load and status use their
// own while they run and put back the caller's.
int callers_print(enum libbpf_print_level, const char*, va_list) {
    return 0;
}

TEST_F(PortTableTest, LoadPutsBackTheCallersLibbpfPrintCallback) {
    libbpf_print_fn_t before = libbpf_set_print(callers_print);
    auto report = load(unattached(pin_dir_, "10.99.0.1"));
    ASSERT_TRUE(report) << report.error().message;
    auto too_many = unattached(pin_dir_, "10.99.0.1");
    too_many.interfaces.assign(NP_MAX_TC_ATTACHMENTS + 1, "ext0");  // refused before anything changes
    EXPECT_FALSE(load(too_many));
    EXPECT_EQ(libbpf_set_print(before), &callers_print);
}

// The median time of one set over 10,000, printed for docs/api.md's
// comparison with the C ABI and Go (no threshold).
TEST_F(PortTableTest, SetTiming) {
    constexpr int n = 10000;
    std::vector<std::chrono::nanoseconds> times(n);
    for (int i = 0; i < n; ++i) {
        auto m = mapping(Proto::tcp, static_cast<std::uint16_t>(20000 + i), "10.8.0.2", 80, "bench");
        auto start = std::chrono::steady_clock::now();
        auto set = table_->set(m);
        times[i] = std::chrono::steady_clock::now() - start;
        ASSERT_TRUE(set) << set.error().message;
    }
    std::ranges::sort(times);
    std::cout << fmt::format("C++ PortTable::set: median {:.2f} us over {} calls (p90 {:.2f} us)\n",
                             times[n / 2].count() / 1000.0, n, times[n * 9 / 10].count() / 1000.0);
}

TEST_F(PortTableTest, UnloadRemovesEveryPin) {
    table_.reset();
    ASSERT_TRUE(unload(pin_dir_));
    EXPECT_FALSE(fs::exists(pin_dir_));
    auto reopened = PortTable::open(pin_dir_);
    ASSERT_FALSE(reopened);
    EXPECT_NE(reopened.error().message.find("not loaded"), std::string::npos) << reopened.error().message;
    EXPECT_EQ(reopened.error().kind, ErrorKind::not_loaded);
}

}  // namespace
}  // namespace nodeport
