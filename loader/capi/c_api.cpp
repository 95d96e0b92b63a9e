// The C ABI (include/nodeport/nodeport.h) over PortTable. Text arguments are
// parsed with the CLI's parsers and the result checked by PortTable itself;
// every C++ Error becomes one negative code plus a thread-local message.
// Nothing throws across the boundary: each entry point catches everything
// (std::bad_alloc included) and reports NODEPORT_EINTERNAL.
#include "nodeport/nodeport.h"

#include <fmt/format.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <new>
#include <string>
#include <unordered_set>
#include <vector>

#include "nodeport/datapath.hpp"
#include "nodeport/port_table.hpp"
#include "nodeport/types.hpp"

struct nodeport_table {
    nodeport::PortTable table;
};

namespace nodeport {
namespace {

thread_local std::string last_error;

int fail(int code, std::string message) {
    last_error = std::move(message);
    return code;
}

int fail(const InputError& error) {
    return fail(NODEPORT_EBADINPUT, "bad input: " + error.field + ": " + error.message);
}

// The one place a C++ Error becomes a code: from its kind.
int code_of(ErrorKind kind) {
    switch (kind) {
    case ErrorKind::bad_input:
        return NODEPORT_EBADINPUT;
    case ErrorKind::not_loaded:
        return NODEPORT_ENOTLOADED;
    case ErrorKind::busy:
        return NODEPORT_EBUSY;
    case ErrorKind::permission:
        return NODEPORT_EPERM;
    case ErrorKind::system:
    case ErrorKind::unsafe_pin_dir:
    case ErrorKind::abi_mismatch:
        break;
    }
    return NODEPORT_EINTERNAL;
}

int fail(const Error& error) { return fail(code_of(error.kind), error.message); }

// Runs one entry point: a clean last_error, no exception out.
template <class F>
int guarded(F&& body) noexcept {
    try {
        last_error.clear();
        return body();
    } catch (const std::bad_alloc&) {
        return fail(NODEPORT_EINTERNAL, "out of memory");
    } catch (const std::exception& e) {
        try {
            return fail(NODEPORT_EINTERNAL, e.what());
        } catch (...) {
            return NODEPORT_EINTERNAL;
        }
    } catch (...) {
        return NODEPORT_EINTERNAL;
    }
}

Parsed<std::string_view> text(const char* s, std::string_view field, std::size_t max) {
    if (s == nullptr)
        return std::unexpected(InputError{std::string(field), "missing (NULL)"});
    std::size_t n = strnlen(s, max + 1);
    if (n > max)
        return std::unexpected(InputError{std::string(field), "longer than " + std::to_string(max) + " characters"});
    return std::string_view(s, n);
}

Parsed<NodePort> node_port(const char* proto, std::uint16_t port) {
    auto name = text(proto, "protocol", 16);
    if (!name)
        return std::unexpected(name.error());
    auto p = parse_proto(*name);
    if (!p)
        return std::unexpected(p.error());
    if (port == 0)
        return std::unexpected(InputError{"node port", "0 is not a port number (1-65535)"});
    return NodePort{*p, port};
}

// What a call's backend addresses may be: the IPv4 view's calls (get,
// list, sync: nodeport_mapping) take IPv4 only, the others either family.
enum class Families { ipv4_only, both };

// "" and NULL: no owner. Read within its bound; PortTable checks the rest
// (check_mapping), as for every caller.
Parsed<std::string> owner_arg(const char* owner) {
    if (owner == nullptr || *owner == '\0')
        return std::string();
    auto name = text(owner, "owner", NP_MAX_OWNER_LEN);
    if (!name)
        return std::unexpected(name.error());
    return std::string(*name);
}

// A backend address as the C ABI spells it: IPv4, or with `families`
// both, IPv6 without brackets.
Parsed<IpAddr> backend_ip_arg(std::string_view ip, Families families) {
    if (families == Families::ipv4_only || ip.find(':') == std::string_view::npos) {
        auto v4 = parse_ipv4(ip, "backend address");
        if (!v4)
            return std::unexpected(v4.error());
        return IpAddr{*v4};
    }
    auto v6 = parse_ipv6(ip, "backend address");
    if (!v6)
        return std::unexpected(v6.error());
    return IpAddr{*v6};
}

// A Mapping from C arguments; PortTable::set checks the rest (check_mapping).
Parsed<Mapping> mapping(const char* proto, std::uint16_t port, const char* backend_ip, std::uint16_t backend_port,
                        const char* owner, Families families) {
    auto np = node_port(proto, port);
    if (!np)
        return std::unexpected(np.error());
    auto ip = text(backend_ip, "backend address", 64);
    if (!ip)
        return std::unexpected(ip.error());
    auto addr = backend_ip_arg(*ip, families);
    if (!addr)
        return std::unexpected(addr.error());
    auto name = owner_arg(owner);
    if (!name)
        return std::unexpected(name.error());
    Mapping m{*np, Backend{*addr, backend_port}, std::move(*name)};
    if (auto ok = check_mapping(m); !ok)
        return std::unexpected(ok.error());
    return m;
}

void copy_text(char* dst, std::size_t size, std::string_view src) {
    std::size_t n = std::min(src.size(), size - 1);
    std::memcpy(dst, src.data(), n);
    dst[n] = '\0';
}

// A Mapping in either C struct: their fields are the same but for the
// address's room.
template <class CMapping>
CMapping to_c(const Mapping& m) {
    CMapping out{};
    copy_text(out.proto, sizeof out.proto, to_string(m.node_port.proto));
    out.port = m.node_port.port;
    copy_text(out.backend_ip, sizeof out.backend_ip, to_string(m.backend.addr));
    out.backend_port = m.backend.port;
    copy_text(out.owner, sizeof out.owner, m.owner);  // stored owners are at most 255 bytes
    return out;
}

// A C struct's entry `i` as a Mapping: the fixed arrays may lack their NUL,
// and are never read past.
template <class CMapping>
Parsed<Mapping> from_c(const CMapping& w, std::size_t i, Families families) {
    std::string proto(w.proto, strnlen(w.proto, sizeof w.proto));
    std::string ip(w.backend_ip, strnlen(w.backend_ip, sizeof w.backend_ip));
    std::string owner(w.owner, strnlen(w.owner, sizeof w.owner));
    if (owner.size() == sizeof w.owner)
        return std::unexpected(InputError{"entry " + std::to_string(i) + ": owner", "not NUL-terminated"});
    auto m = mapping(proto.c_str(), w.port, ip.c_str(), w.backend_port, owner.c_str(), families);
    if (!m)
        return std::unexpected(InputError{"entry " + std::to_string(i) + ": " + m.error().field, m.error().message});
    return m;
}

// list and list2: the mappings `keep` keeps, in a malloc'd array of
// CMapping (the caller may be C, and the free calls are free()).
template <class CMapping, class Keep>
int list_into(struct nodeport_table* np, CMapping** out, size_t* n, Keep keep) {
    if (out == nullptr || n == nullptr)
        return fail(NODEPORT_EBADINPUT, "bad input: out, n: NULL");
    *out = nullptr;
    *n = 0;
    auto all = np->table.list();
    if (!all)
        return fail(all.error());
    std::erase_if(*all, [&](const Mapping& m) { return !keep(m); });
    if (all->empty())
        return int{NODEPORT_OK};
    auto* array = static_cast<CMapping*>(std::calloc(all->size(), sizeof(CMapping)));
    if (array == nullptr)
        return fail(NODEPORT_EINTERNAL, "out of memory");
    for (std::size_t i = 0; i < all->size(); ++i)
        array[i] = to_c<CMapping>((*all)[i]);
    *out = array;
    *n = all->size();
    return int{NODEPORT_OK};
}

// sync and sync2: every entry checked before anything changes.
template <class CMapping>
int sync_from(struct nodeport_table* np, const CMapping* want, size_t n, Families families) {
    if (want == nullptr && n != 0)
        return fail(NODEPORT_EBADINPUT, "bad input: want: NULL with n > 0");
    std::vector<Mapping> desired;
    desired.reserve(n);
    for (std::size_t i = 0; i < n; ++i) {
        auto m = from_c(want[i], i, families);
        if (!m)
            return fail(m.error());
        desired.push_back(std::move(*m));
    }
    // The IPv4 view syncs the IPv4 mappings only; both: the whole table.
    // Either refuses a port listed twice for one family.
    auto synced = np->table.sync(desired, {}, families == Families::ipv4_only ? std::optional(Family::ipv4)
                                                                              : std::nullopt);
    return synced ? int{NODEPORT_OK} : fail(synced.error());
}

// The handles nodeport_open gave and nodeport_close has not closed. A call
// with any other pointer (closed already, never opened) is refused at once
// instead of reading freed memory; closing one twice does nothing. (A
// closed handle's address may come back from a later nodeport_open: then it
// is that table's, as with any C handle.)
std::mutex open_mutex;
std::unordered_set<const nodeport_table*> open_handles;

bool is_open(const nodeport_table* np) {
    std::lock_guard guard(open_mutex);
    return open_handles.contains(np);
}

// The handle argument, checked: NODEPORT_OK or the code to return.
int check_handle(const nodeport_table* np) {
    if (np == nullptr)
        return fail(NODEPORT_EBADINPUT, "bad input: handle: NULL");
    if (!is_open(np))
        return fail(NODEPORT_EBADINPUT, "bad input: handle: not open (closed already, or not from nodeport_open)");
    return NODEPORT_OK;
}

// nodeport_open and nodeport_open_with, once their arguments are read.
int open_table(const char* pin_dir, std::chrono::milliseconds lock_wait, struct nodeport_table** out) {
    *out = nullptr;
    std::filesystem::path dir = default_pin_dir;
    if (pin_dir != nullptr) {
        auto p = text(pin_dir, "pin directory", 4096);
        if (!p)
            return fail(p.error());
        if (p->empty() || p->front() != '/')
            return fail(InputError{"pin directory", "must be an absolute path"});
        dir = std::string(*p);
    }
    auto table = PortTable::open(dir, lock_wait);
    if (!table)
        return fail(table.error());
    auto handle = std::make_unique<nodeport_table>(std::move(*table));
    {
        std::lock_guard guard(open_mutex);
        open_handles.insert(handle.get());
    }
    *out = handle.release();
    return int{NODEPORT_OK};
}

// The fields of nodeport_open_opts this library knows end here; a caller's
// larger struct must hold zeros beyond (fields of a later version).
constexpr std::size_t known_opts_size = offsetof(struct nodeport_open_opts, lock_wait_ms) + sizeof(std::int64_t);
constexpr std::int64_t max_lock_wait_ms = 3'600'000;

}  // namespace
}  // namespace nodeport

using namespace nodeport;

extern "C" {

int nodeport_open(const char* pin_dir, struct nodeport_table** out) {
    return guarded([&] {
        if (out == nullptr)
            return fail(NODEPORT_EBADINPUT, "bad input: out: NULL");
        return open_table(pin_dir, default_lock_wait, out);
    });
}

int nodeport_open_with(const struct nodeport_open_opts* opts, struct nodeport_table** out) {
    return guarded([&] {
        if (out == nullptr)
            return fail(NODEPORT_EBADINPUT, "bad input: out: NULL");
        *out = nullptr;
        if (opts == nullptr)
            return open_table(nullptr, default_lock_wait, out);
        if (opts->sz < sizeof(std::size_t))
            return fail(NODEPORT_EBADINPUT, "bad input: opts.sz: smaller than the struct's first field");
        // Read only the caller's sz bytes: an older caller's struct is shorter.
        struct nodeport_open_opts known{};
        std::memcpy(&known, opts, std::min(opts->sz, sizeof known));
        const auto* bytes = reinterpret_cast<const unsigned char*>(opts);
        for (std::size_t i = known_opts_size; i < opts->sz; ++i)
            if (bytes[i] != 0)
                return fail(NODEPORT_EBADINPUT,
                            "bad input: opts: a field this library (" NODEPORT_LIB_VERSION ") does not know is set");
        std::chrono::milliseconds wait = default_lock_wait;
        if (known.lock_wait_ms == -1)
            wait = std::chrono::milliseconds{0};
        else if (known.lock_wait_ms < -1 || known.lock_wait_ms > max_lock_wait_ms)
            return fail(NODEPORT_EBADINPUT, "bad input: opts.lock_wait_ms: not -1, 0 or 1-3600000");
        else if (known.lock_wait_ms > 0)
            wait = std::chrono::milliseconds{known.lock_wait_ms};
        return open_table(known.pin_dir, wait, out);
    });
}

const char* nodeport_version(void) { return NODEPORT_LIB_VERSION; }

void nodeport_close(struct nodeport_table* np) {
    try {
        {
            std::lock_guard guard(open_mutex);
            if (np == nullptr || open_handles.erase(np) == 0)
                return;  // NULL, or closed already
        }
        delete np;  // PortTable's destructor closes fds: it does not throw
    } catch (...) {
        // Nothing crosses the boundary (a mutex that cannot be locked).
    }
}

int nodeport_set(struct nodeport_table* np, const char* proto, uint16_t port, const char* backend_ip,
                 uint16_t backend_port, const char* owner) {
    return guarded([&] {
        if (int bad = check_handle(np); bad != NODEPORT_OK)
            return bad;
        auto m = mapping(proto, port, backend_ip, backend_port, owner, Families::both);
        if (!m)
            return fail(m.error());
        auto set = np->table.set(*m);
        return set ? int{NODEPORT_OK} : fail(set.error());
    });
}

int nodeport_del(struct nodeport_table* np, const char* proto, uint16_t port, const char* owner) {
    return guarded([&] {
        if (int bad = check_handle(np); bad != NODEPORT_OK)
            return bad;
        auto p = node_port(proto, port);
        if (!p)
            return fail(p.error());
        // NULL: any owner. "" is not one (PortTable::remove refuses it, as
        // it checks every owner).
        std::optional<std::string> who;
        if (owner != nullptr) {
            auto name = text(owner, "owner", NP_MAX_OWNER_LEN);
            if (!name)
                return fail(name.error());
            who = std::string(*name);
        }
        auto removed = np->table.remove(*p, who);
        if (!removed)
            return fail(removed.error());
        switch (removed->outcome) {
        case RemoveOutcome::removed:
            return int{NODEPORT_OK};
        case RemoveOutcome::not_mapped:
            return fail(NODEPORT_ENOTFOUND, "nothing is mapped on " + to_string(*p));
        case RemoveOutcome::held_by_other:
            return fail(NODEPORT_EOWNED, to_string(*p) + " is held by '" + printable(removed->holder) + "', left alone");
        }
        return fail(NODEPORT_EINTERNAL, "unknown remove outcome");
    });
}

int nodeport_del_owner(struct nodeport_table* np, const char* owner) {
    return guarded([&] {
        if (int bad = check_handle(np); bad != NODEPORT_OK)
            return bad;
        auto name = text(owner, "owner", NP_MAX_OWNER_LEN);
        if (!name)
            return fail(name.error());
        auto removed = np->table.remove_owner(*name);
        return removed ? int{NODEPORT_OK} : fail(removed.error());
    });
}

int nodeport_get(struct nodeport_table* np, const char* proto, uint16_t port, nodeport_mapping* out) {
    return guarded([&] {
        if (int bad = check_handle(np); bad != NODEPORT_OK)
            return bad;
        if (out == nullptr)
            return fail(NODEPORT_EBADINPUT, "bad input: out: NULL");
        auto p = node_port(proto, port);
        if (!p)
            return fail(p.error());
        auto got = np->table.get(*p);
        if (!got)
            return fail(got.error());
        auto v4 = std::ranges::find(*got, Family::ipv4, &Mapping::family);
        if (v4 == got->end())
            return fail(NODEPORT_ENOTFOUND, "nothing IPv4 is mapped on " + to_string(*p));
        *out = to_c<nodeport_mapping>(*v4);
        return int{NODEPORT_OK};
    });
}

int nodeport_get2(struct nodeport_table* np, const char* proto, uint16_t port, nodeport_mapping2 out[2], size_t* n) {
    return guarded([&] {
        if (int bad = check_handle(np); bad != NODEPORT_OK)
            return bad;
        if (out == nullptr || n == nullptr)
            return fail(NODEPORT_EBADINPUT, "bad input: out, n: NULL");
        *n = 0;
        auto p = node_port(proto, port);
        if (!p)
            return fail(p.error());
        auto got = np->table.get(*p);  // at most one per family, IPv4 first
        if (!got)
            return fail(got.error());
        if (got->empty())
            return fail(NODEPORT_ENOTFOUND, "nothing is mapped on " + to_string(*p));
        for (const auto& m : *got)
            out[(*n)++] = to_c<nodeport_mapping2>(m);
        return int{NODEPORT_OK};
    });
}

int nodeport_list(struct nodeport_table* np, nodeport_mapping** out, size_t* n) {
    return guarded([&] {
        if (int bad = check_handle(np); bad != NODEPORT_OK)
            return bad;
        return list_into(np, out, n, [](const Mapping& m) { return m.family() == Family::ipv4; });
    });
}

int nodeport_list2(struct nodeport_table* np, nodeport_mapping2** out, size_t* n) {
    return guarded([&] {
        if (int bad = check_handle(np); bad != NODEPORT_OK)
            return bad;
        return list_into(np, out, n, [](const Mapping&) { return true; });
    });
}

void nodeport_free(nodeport_mapping* list) {
    std::free(list);
}

void nodeport_free2(nodeport_mapping2* list) {
    std::free(list);
}

int nodeport_sync(struct nodeport_table* np, const nodeport_mapping* want, size_t n) {
    return guarded([&] {
        if (int bad = check_handle(np); bad != NODEPORT_OK)
            return bad;
        return sync_from(np, want, n, Families::ipv4_only);
    });
}

int nodeport_sync2(struct nodeport_table* np, const nodeport_mapping2* want, size_t n) {
    return guarded([&] {
        if (int bad = check_handle(np); bad != NODEPORT_OK)
            return bad;
        return sync_from(np, want, n, Families::both);
    });
}

int nodeport_drain(struct nodeport_table* np, const char* backend_ip, uint16_t backend_port, uint32_t timeout_ms,
                   nodeport_connections* left) {
    return guarded([&] {
        if (int bad = check_handle(np); bad != NODEPORT_OK)
            return bad;
        if (left != nullptr)
            *left = nodeport_connections{};
        auto ip = text(backend_ip, "backend address", 64);
        if (!ip)
            return fail(ip.error());
        // The CLI's parser, so that both accept the same backends.
        const bool v6 = ip->find(':') != std::string_view::npos;
        auto backend = parse_backend(v6 ? fmt::format("[{}]:{}", *ip, backend_port)
                                        : fmt::format("{}:{}", *ip, backend_port));
        if (!backend)
            return fail(backend.error());
        auto drained = np->table.drain(*backend, std::chrono::milliseconds(timeout_ms));
        if (!drained)
            return fail(drained.error());
        if (left != nullptr)
            *left = nodeport_connections{drained->left.external, drained->left.local};
        if (drained->drained)
            return int{NODEPORT_OK};
        return fail(NODEPORT_ETIMEDOUT, fmt::format("{} connection(s) left to {} after {} ms (external {}, local {})",
                                                    drained->left.total(), to_string(*backend), timeout_ms,
                                                    drained->left.external, drained->left.local));
    });
}

const char* nodeport_strerror(int code) {
    switch (code) {
    case NODEPORT_OK:
        return "success";
    case NODEPORT_EBADINPUT:
        return "bad input";
    case NODEPORT_ENOTLOADED:
        return "nodeport is not loaded";
    case NODEPORT_ENOTFOUND:
        return "not mapped";
    case NODEPORT_EOWNED:
        return "held by another owner";
    case NODEPORT_EPERM:
        return "permission denied";
    case NODEPORT_EINTERNAL:
        return "internal error";
    case NODEPORT_ETIMEDOUT:
        return "timed out with connections left";
    case NODEPORT_EBUSY:
        return "the pin directory's lock is busy";
    }
    return "unknown nodeport error code";
}

const char* nodeport_last_error(void) {
    return last_error.c_str();
}

}  // extern "C"
