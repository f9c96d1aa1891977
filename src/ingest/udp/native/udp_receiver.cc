// sealflow UDP receiver addon (Linux): one socket, one receiver thread, batches to JS.
//
// What lives here: creating and binding the socket, the receive buffer size, and a thread
// that reads datagrams with recvmmsg(2) and hands them to the JS main thread in batches
// ("frames"), one threadsafe-function call per batch instead of one JS callback per datagram.
// What does not: anything that looks at the bytes. Payloads are copied, never parsed; the
// allowlist, size limit, counters, tees and the sink are TypeScript (udp-listener.ts).
//
// Frame layout (one ArrayBuffer, native endianness):
//   count × kMetaWords u32 metadata, then the payloads back to back. Per datagram:
//   [0] payload offset from the start of the buffer, [1] payload length,
//   [2] flags: bits 0-7 source family (4 or 6), bit 8 truncated (longer than maxDatagramBytes;
//       no payload bytes, offset and length 0), [3] source port,
//   [4..7] source address: IPv4 as one u32 in host order in [4]; IPv6 as the 16 raw bytes.
//   IPv4-mapped IPv6 sources (::ffff:a.b.c.d, a dual-stack socket's IPv4 peers) are IPv4.
//
// Invariants:
// - The receiver thread only touches the socket, the wake-up eventfd, its own buffers and the
//   threadsafe function (TSFN). The JS thread owns the TSFN reference; it releases it (abort
//   mode, which also wakes a call blocked on a full queue) and joins the thread before the
//   reference can be freed, so the thread never calls into a freed TSFN.
// - Frames are malloc'd by the thread and owned by the queue until delivered; delivered ones
//   become external ArrayBuffers freed by their finalizer, undelivered ones (queue drained on
//   close or environment teardown, call_js with env == nullptr) are freed there. The TSFN
//   queue is bounded (kQueueFrames): when JS falls behind the thread blocks and the kernel
//   socket buffer absorbs the burst, its overflow counted by the kernel (/proc/net/udp drops).
// - The thread never spins: it sleeps in poll(2) on the socket and the eventfd, waits
//   kGatherTimeoutMs on the eventfd alone, then reads with MSG_DONTWAIT until the socket is
//   empty (a short batch means it was).
// - An environment cleanup hook stops and joins the thread, so worker/process teardown with
//   an open receiver neither hangs nor lets the thread outlive the TSFN.

#include <napi.h>

#if defined(__linux__)

#include <uv.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

namespace {

constexpr unsigned kBatch = 64;        // datagrams per recvmmsg(2) call = most per frame
constexpr size_t kQueueFrames = 16;    // TSFN queue bound: frames waiting for the JS thread
// After the first datagram of a quiet spell, wait this long (for close() only) before reading,
// so the datagrams of the next millisecond queue in the socket and are read and handed over
// together. Exporters pace their datagrams, so without it a batch would mostly be a single
// datagram and the JS thread would pay a threadsafe-function call (async wake-up, queue lock,
// ArrayBuffer) per datagram, about what a node:dgram 'message' event costs. Flow records
// carry their own timestamps; 1 ms on receivedAtMs is immaterial.
constexpr int kGatherTimeoutMs = 1;
constexpr unsigned kMetaWords = 8;     // u32 words of metadata per datagram (see layout above)
constexpr uint32_t kTruncated = 1u << 8;
constexpr const char* kThreadName = "sealflow-udp";  // ≤ 15 chars (pthread_setname_np(3))

struct Frame {
  char* data = nullptr;  // malloc'd: metadata then payloads
  size_t size = 0;
  uint32_t count = 0;
  int error = 0;  // errno of a failed recvmmsg (count == 0), else 0
};

void FreeFrame(Frame* f) {
  free(f->data);
  delete f;
}

void FreeExternal(napi_env, void* data, void*) { free(data); }

std::string ErrName(int err) {
  const char* name = uv_err_name(-err);  // libuv codes are negated errno on Unix
  return name != nullptr ? name : ("E" + std::to_string(err));
}

// Runs on the JS thread for each frame; env == nullptr when the queue is drained on close.
void CallJs(napi_env env, napi_value js_cb, void*, void* data) {
  auto* f = static_cast<Frame*>(data);
  if (env == nullptr || js_cb == nullptr) {
    FreeFrame(f);
    return;
  }
  napi_value args[3];
  if (f->count > 0) {
    napi_status s = napi_create_external_arraybuffer(env, f->data, f->size, FreeExternal, nullptr, &args[0]);
    if (s == napi_ok) {
      f->data = nullptr;  // owned by the ArrayBuffer now
    } else {
      // Runtimes without external buffers (napi_no_external_buffers_allowed): copy.
      void* dst = nullptr;
      if (napi_create_arraybuffer(env, f->size, &dst, &args[0]) != napi_ok) {
        FreeFrame(f);
        return;
      }
      memcpy(dst, f->data, f->size);
    }
  } else {
    napi_get_null(env, &args[0]);
  }
  napi_create_uint32(env, f->count, &args[1]);
  napi_create_int32(env, f->error, &args[2]);
  FreeFrame(f);
  napi_value undefined;
  napi_get_undefined(env, &undefined);
  napi_status s = napi_call_function(env, undefined, js_cb, 3, args, nullptr);
  if (s == napi_pending_exception) {
    // Same outcome as a throwing dgram 'message' listener: an uncaught exception.
    napi_value err;
    napi_get_and_clear_last_exception(env, &err);
    napi_fatal_exception(env, err);
  }
}

class Receiver : public Napi::ObjectWrap<Receiver> {
 public:
  static Napi::Function Init(Napi::Env env) {
    return DefineClass(env, "Receiver",
                       {InstanceMethod<&Receiver::Start>("start"), InstanceMethod<&Receiver::Close>("close"),
                        InstanceMethod<&Receiver::Address>("address"),
                        InstanceMethod<&Receiver::RecvBufferGranted>("recvBufferGranted")});
  }

  // new Receiver({ address, port, ipv6Only, recvBufferBytes, maxDatagramBytes }): creates and
  // binds the socket. A failure throws an Error whose `code` is the errno name ("EADDRINUSE").
  explicit Receiver(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Receiver>(info) {
    Napi::Env env = info.Env();
    Napi::Object o = info[0].As<Napi::Object>();
    std::string address = o.Get("address").As<Napi::String>().Utf8Value();
    uint32_t port = o.Get("port").As<Napi::Number>().Uint32Value();
    bool v6only = o.Get("ipv6Only").ToBoolean().Value();
    int64_t rcvbuf = o.Get("recvBufferBytes").As<Napi::Number>().Int64Value();
    int64_t maxDgram = o.Get("maxDatagramBytes").As<Napi::Number>().Int64Value();
    if (port > 65535 || maxDgram < 1 || maxDgram > 65535 || rcvbuf < 0 || rcvbuf > INT32_MAX) {
      throw Napi::RangeError::New(env, "invalid port, maxDatagramBytes or recvBufferBytes");
    }
    maxDatagram_ = static_cast<size_t>(maxDgram);

    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_DGRAM;
    hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV | AI_PASSIVE;
    addrinfo* ai = nullptr;
    std::string portText = std::to_string(port);
    if (getaddrinfo(address.c_str(), portText.c_str(), &hints, &ai) != 0 || ai == nullptr) {
      Fail(env, EINVAL, "getaddrinfo", address, port);
    }
    int family = ai->ai_family;
    fd_ = socket(family, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd_ < 0) {
      int e = errno;
      freeaddrinfo(ai);
      Fail(env, e, "socket", address, port);
    }
    if (family == AF_INET6) {
      int on = v6only ? 1 : 0;  // ipv6(7): explicit, the sysctl default may differ
      setsockopt(fd_, IPPROTO_IPV6, IPV6_V6ONLY, &on, sizeof on);
    }
    // No SO_REUSEADDR: like node:dgram with exclusive bind, a taken port is EADDRINUSE.
    if (bind(fd_, ai->ai_addr, ai->ai_addrlen) != 0) {
      int e = errno;
      freeaddrinfo(ai);
      CloseFd();
      Fail(env, e, "bind", address, port);
    }
    freeaddrinfo(ai);
    // socket(7): SO_RCVBUF is capped at net.core.rmem_max; SO_RCVBUFFORCE bypasses the cap
    // for a process with CAP_NET_ADMIN and fails with EPERM otherwise (then the cap stands).
    int want = static_cast<int>(rcvbuf);
    setsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &want, sizeof want);
    int granted = 0;
    socklen_t len = sizeof granted;
    getsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &granted, &len);
    if (static_cast<int64_t>(granted) < 2 * rcvbuf) {  // reported: twice the effective size (socket(7))
      setsockopt(fd_, SOL_SOCKET, SO_RCVBUFFORCE, &want, sizeof want);
      len = sizeof granted;
      getsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &granted, &len);
    }
    granted_ = granted;
  }

  ~Receiver() override {
    Stop(false);
    CloseFd();
  }

 private:
  [[noreturn]] static void Fail(Napi::Env env, int err, const char* syscall, const std::string& address, uint32_t port) {
    std::string code = ErrName(err);
    Napi::Error e = Napi::Error::New(env, std::string(syscall) + " " + code + " " + address + ":" + std::to_string(port));
    e.Set("code", Napi::String::New(env, code));
    e.Set("errno", Napi::Number::New(env, -err));
    e.Set("syscall", Napi::String::New(env, syscall));
    throw e;
  }

  void CloseFd() {
    if (fd_ >= 0) close(fd_);
    fd_ = -1;
  }

  // start(onFrame(buffer: ArrayBuffer | null, count: number, errno: number)): starts the thread.
  Napi::Value Start(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (fd_ < 0 || started_) throw Napi::Error::New(env, "receiver is closed or already started");
    Napi::Function cb = info[0].As<Napi::Function>();
    wake_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (wake_ < 0) throw Napi::Error::New(env, std::string("eventfd: ") + strerror(errno));
    napi_value name = Napi::String::New(env, "sealflow-udp-frames");
    napi_status s = napi_create_threadsafe_function(env, cb, nullptr, name, kQueueFrames, 1, nullptr, nullptr,
                                                    nullptr, CallJs, &tsfn_);
    if (s != napi_ok) {
      close(wake_);
      wake_ = -1;
      throw Napi::Error::New(env, "napi_create_threadsafe_function failed");
    }
    // Registered after the TSFN: cleanup hooks run in reverse order, so ours stops the thread
    // before node tears the TSFN down.
    env_ = env;
    napi_add_env_cleanup_hook(env, CleanupHook, this);
    stop_.store(false);
    started_ = true;
    Ref();  // not collectable while the thread runs; close() unrefs
    try {
      thread_ = std::thread([this] { Run(); });
      // Named here too, so the name is visible as soon as start() returns.
      pthread_setname_np(thread_.native_handle(), kThreadName);
    } catch (...) {
      Stop(false);
      throw Napi::Error::New(env, "cannot start the UDP receiver thread");
    }
    return env.Undefined();
  }

  // Stops and joins the thread, drops undelivered frames and closes the socket; idempotent.
  Napi::Value Close(const Napi::CallbackInfo& info) {
    Stop(false);
    CloseFd();
    return info.Env().Undefined();
  }

  Napi::Value Address(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    sockaddr_storage ss{};
    socklen_t len = sizeof ss;
    if (fd_ < 0 || getsockname(fd_, reinterpret_cast<sockaddr*>(&ss), &len) != 0) return env.Null();
    char text[INET6_ADDRSTRLEN] = {0};
    Napi::Object o = Napi::Object::New(env);
    if (ss.ss_family == AF_INET6) {
      auto* a = reinterpret_cast<sockaddr_in6*>(&ss);
      inet_ntop(AF_INET6, &a->sin6_addr, text, sizeof text);
      o.Set("family", "IPv6");
      o.Set("port", ntohs(a->sin6_port));
    } else {
      auto* a = reinterpret_cast<sockaddr_in*>(&ss);
      inet_ntop(AF_INET, &a->sin_addr, text, sizeof text);
      o.Set("family", "IPv4");
      o.Set("port", ntohs(a->sin_port));
    }
    o.Set("address", text);
    return o;
  }

  Napi::Value RecvBufferGranted(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), granted_); }

  static void CleanupHook(void* arg) { static_cast<Receiver*>(arg)->Stop(true); }

  // JS thread only.
  void Stop(bool fromHook) {
    if (!started_) return;
    started_ = false;
    stop_.store(true);
    uint64_t one = 1;
    ssize_t w = write(wake_, &one, sizeof one);  // wakes poll(2)
    (void)w;
    // Abort: a call blocked on the full queue returns napi_closing; queued frames are freed.
    napi_release_threadsafe_function(tsfn_, napi_tsfn_abort);
    if (thread_.joinable()) thread_.join();
    tsfn_ = nullptr;
    close(wake_);
    wake_ = -1;
    if (!fromHook) {
      napi_remove_env_cleanup_hook(env_, CleanupHook, this);
      Unref();
    }
  }

  // Receiver thread.
  void Run() {
    pthread_setname_np(pthread_self(), kThreadName);
    const size_t slot = maxDatagram_ + 1;  // one byte more than allowed: a longer datagram shows
    std::vector<char> buf(slot * kBatch);  // up as msg_len > max or MSG_TRUNC (recvmmsg(2))
    std::vector<mmsghdr> msgs(kBatch);
    std::vector<iovec> iov(kBatch);
    std::vector<sockaddr_storage> from(kBatch);
    pollfd fds[2] = {{fd_, POLLIN, 0}, {wake_, POLLIN, 0}};
    while (!stop_.load(std::memory_order_relaxed)) {
      int r = poll(fds, 2, -1);
      if (r < 0) {
        if (errno == EINTR) continue;
        return;
      }
      if (fds[1].revents != 0) return;
      if (poll(&fds[1], 1, kGatherTimeoutMs) > 0) return;  // close() during the gather wait
      for (;;) {  // drain what poll reported, one batch per recvmmsg
        for (unsigned i = 0; i < kBatch; i++) {
          iov[i].iov_base = buf.data() + i * slot;
          iov[i].iov_len = slot;
          msgs[i].msg_hdr = msghdr{};
          msgs[i].msg_hdr.msg_name = &from[i];
          msgs[i].msg_hdr.msg_namelen = sizeof(sockaddr_storage);
          msgs[i].msg_hdr.msg_iov = &iov[i];
          msgs[i].msg_hdr.msg_iovlen = 1;
          msgs[i].msg_len = 0;
        }
        int n = recvmmsg(fd_, msgs.data(), kBatch, MSG_DONTWAIT, nullptr);
        if (n < 0) {
          int e = errno;
          if (e == EAGAIN || e == EWOULDBLOCK) break;
          if (e == EINTR) continue;
          auto* f = new Frame();
          f->error = e;
          if (!Deliver(f)) return;
          break;  // back to poll: a pending socket error was consumed by this call
        }
        if (n == 0) break;
        if (!Deliver(Pack(msgs.data(), static_cast<unsigned>(n)))) return;
        if (static_cast<unsigned>(n) < kBatch || stop_.load(std::memory_order_relaxed)) break;
      }
    }
  }

  Frame* Pack(const mmsghdr* msgs, unsigned n) {
    size_t payload = 0;
    for (unsigned i = 0; i < n; i++) {
      if (!Truncated(msgs[i])) payload += msgs[i].msg_len;
    }
    const size_t metaBytes = static_cast<size_t>(n) * kMetaWords * 4;
    auto* f = new Frame();
    f->size = metaBytes + payload;
    f->count = n;
    f->data = static_cast<char*>(malloc(f->size));
    if (f->data == nullptr) {
      delete f;
      return nullptr;
    }
    auto* meta = reinterpret_cast<uint32_t*>(f->data);
    size_t off = metaBytes;
    for (unsigned i = 0; i < n; i++) {
      uint32_t* m = meta + static_cast<size_t>(i) * kMetaWords;
      const mmsghdr& h = msgs[i];
      bool trunc = Truncated(h);
      uint32_t len = trunc ? 0 : h.msg_len;
      m[0] = trunc ? 0 : static_cast<uint32_t>(off);
      m[1] = len;
      m[4] = m[5] = m[6] = m[7] = 0;
      const auto* sa = static_cast<const sockaddr*>(h.msg_hdr.msg_name);
      uint32_t family = 4;
      if (sa->sa_family == AF_INET6) {
        const auto* a6 = reinterpret_cast<const sockaddr_in6*>(sa);
        m[3] = ntohs(a6->sin6_port);
        if (IN6_IS_ADDR_V4MAPPED(&a6->sin6_addr)) {
          uint32_t v4;
          memcpy(&v4, a6->sin6_addr.s6_addr + 12, 4);
          m[4] = ntohl(v4);
        } else {
          family = 6;
          memcpy(&m[4], a6->sin6_addr.s6_addr, 16);
        }
      } else {
        const auto* a4 = reinterpret_cast<const sockaddr_in*>(sa);
        m[3] = ntohs(a4->sin_port);
        m[4] = ntohl(a4->sin_addr.s_addr);
      }
      m[2] = family | (trunc ? kTruncated : 0);
      if (len > 0) {
        memcpy(f->data + off, h.msg_hdr.msg_iov[0].iov_base, len);
        off += len;
      }
    }
    return f;
  }

  bool Truncated(const mmsghdr& h) const { return (h.msg_hdr.msg_flags & MSG_TRUNC) != 0 || h.msg_len > maxDatagram_; }

  // Queues a frame for JS, blocking while the queue is full. False: the receiver is closing.
  bool Deliver(Frame* f) {
    if (f == nullptr) return true;  // out of memory: this batch is lost, keep receiving
    napi_status s = napi_call_threadsafe_function(tsfn_, f, napi_tsfn_blocking);
    if (s != napi_ok) {
      FreeFrame(f);
      return false;
    }
    return true;
  }

  int fd_ = -1;
  int wake_ = -1;
  int granted_ = 0;
  size_t maxDatagram_ = 0;
  bool started_ = false;
  std::atomic<bool> stop_{false};
  napi_threadsafe_function tsfn_ = nullptr;
  napi_env env_ = nullptr;
  std::thread thread_;
};

Napi::Object InitModule(Napi::Env env, Napi::Object exports) {
  exports.Set("Receiver", Receiver::Init(env));
  exports.Set("threadName", kThreadName);
  exports.Set("metaWords", kMetaWords);
  exports.Set("batch", kBatch);
  return exports;
}

}  // namespace

#else  // recvmmsg(2), eventfd(2) and SO_RCVBUFFORCE are Linux-only: the JS side uses node:dgram.

namespace {
Napi::Object InitModule(Napi::Env env, Napi::Object exports) { return exports; }
}  // namespace

#endif

NODE_API_MODULE(sealflow_udp, InitModule)
