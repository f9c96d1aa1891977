// sealflow DTLS addon: a thin N-API wrapper around the OpenSSL that the node binary links.
//
// What lives here: the DTLS 1.2 handshake, record protection and X.509 chain verification
// (all done by OpenSSL). What does not: sockets, demultiplexing by peer, limits, timers, the
// identity allowlist; those are TypeScript (src/ingest/dtls/). JS feeds one received UDP
// datagram per call and gets back the datagrams to send plus decrypted application records.
//
// Invariants:
// - Every OpenSSL object has exactly one owner: Context owns one SSL_CTX reference, Listener
//   owns one SSL_CTX reference plus its listening SSL, Session owns its SSL (which owns its
//   BIO and one SSL_CTX reference). destroy() is idempotent and the GC finalizer calls it.
// - Every entry point clears the thread's OpenSSL error queue first and drains it before
//   returning, so an error left by one session can never be attributed to another.
// - The datagram BIO has datagram semantics: one read returns exactly one datagram (RFC 6347
//   §4.1.1: records never span datagrams), one write produces exactly one outgoing datagram.
// - Cookies (RFC 6347 §4.2.1) are HMAC-SHA256(secret, peer) where peer is the "address|port"
//   key JS passes in; the previous secret is still accepted after a rotation so a handshake
//   that straddles the rotation completes.

#include <napi.h>

#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/opensslv.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>

#include <algorithm>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace {

constexpr size_t kCookieSecretBytes = 32;                // HMAC-SHA256 key size
constexpr size_t kReadBufferBytes = 16384 + 2048;         // RFC 6347 §4.1: max plaintext + slack
constexpr long kMinMtu = 256;                             // below this OpenSSL cannot fragment a flight
constexpr long kMaxMtu = 65507;                           // largest UDP payload over IPv4
constexpr int kMaxVerifyDepth = 8;                        // CA chain depth we accept
constexpr const char* kDefaultCiphers = "ECDHE+AESGCM:ECDHE+CHACHA20:!aNULL:!eNULL:!EXPORT";

// ---------------------------------------------------------------------------------------------
// Error queue helpers

struct SslError {
  unsigned long code = 0;
  std::string text;
};

// Drains the whole queue, keeping the earliest error (the root cause).
SslError DrainErrors() {
  SslError e;
  unsigned long c;
  char buf[256];
  while ((c = ERR_get_error()) != 0) {
    if (e.code == 0) {
      e.code = c;
      ERR_error_string_n(c, buf, sizeof buf);
      e.text = buf;
    }
  }
  return e;
}

[[noreturn]] void ThrowSsl(Napi::Env env, const std::string& what) {
  SslError e = DrainErrors();
  std::string msg = what;
  if (!e.text.empty()) msg += ": " + e.text;
  throw Napi::Error::New(env, msg);
}

// ---------------------------------------------------------------------------------------------
// Datagram BIO: one datagram in at a time, each write captured as one datagram out.

struct DgramState {
  std::string in;
  bool hasIn = false;
  std::vector<std::string> out;
};

BIO_METHOD* g_dgramMethod = nullptr;

int DgramCreate(BIO* b) {
  BIO_set_data(b, new DgramState());
  BIO_set_init(b, 1);
  return 1;
}

int DgramDestroy(BIO* b) {
  delete static_cast<DgramState*>(BIO_get_data(b));
  BIO_set_data(b, nullptr);
  BIO_set_init(b, 0);
  return 1;
}

int DgramWrite(BIO* b, const char* data, int len) {
  BIO_clear_retry_flags(b);
  auto* d = static_cast<DgramState*>(BIO_get_data(b));
  if (d == nullptr || len < 0) return -1;
  d->out.emplace_back(data, static_cast<size_t>(len));
  return len;
}

int DgramRead(BIO* b, char* buf, int size) {
  BIO_clear_retry_flags(b);
  auto* d = static_cast<DgramState*>(BIO_get_data(b));
  if (d == nullptr || size < 0) return -1;
  if (!d->hasIn) {
    BIO_set_retry_read(b);
    return -1;
  }
  // Datagram semantics: a short read truncates and the rest of the datagram is discarded.
  size_t n = std::min(static_cast<size_t>(size), d->in.size());
  std::memcpy(buf, d->in.data(), n);
  d->in.clear();
  d->hasIn = false;
  return static_cast<int>(n);
}

long DgramCtrl(BIO* b, int cmd, long num, void* ptr) {
  auto* d = static_cast<DgramState*>(BIO_get_data(b));
  switch (cmd) {
    case BIO_CTRL_FLUSH:
      return 1;
    case BIO_CTRL_PENDING:
      return d != nullptr && d->hasIn ? static_cast<long>(d->in.size()) : 0;
    case BIO_CTRL_WPENDING:
      return 0;
    default:
      // Peer address, MTU queries, timeouts: JS owns the socket, so "unsupported" (0) is the
      // honest answer and OpenSSL tolerates it (SSL_OP_NO_QUERY_MTU is set, MTU set by JS).
      return 0;
  }
}

int DgramPuts(BIO* b, const char* str) { return DgramWrite(b, str, static_cast<int>(std::strlen(str))); }

BIO* NewDgramBio() {
  BIO* b = BIO_new(g_dgramMethod);
  return b;
}

DgramState* StateOf(SSL* ssl) {
  BIO* b = SSL_get_rbio(ssl);
  return b == nullptr ? nullptr : static_cast<DgramState*>(BIO_get_data(b));
}

// ---------------------------------------------------------------------------------------------
// Per-SSL data reachable from OpenSSL callbacks (SSL ex_data).

struct CookieSecrets {
  unsigned char current[kCookieSecretBytes];
  unsigned char previous[kCookieSecretBytes];
  bool hasCurrent = false;
  bool hasPrevious = false;
  ~CookieSecrets() {
    OPENSSL_cleanse(current, sizeof current);
    OPENSSL_cleanse(previous, sizeof previous);
  }
};

struct SslData {
  std::string peer;                         // "address|port" the cookie is bound to
  std::shared_ptr<CookieSecrets> secrets;   // shared with the Listener (rotation visible)
  int alertSent = -1;                       // last alert description we sent
  int alertReceived = -1;                   // last alert description the peer sent
  long mtu = 1400;                          // what SSL_set_mtu was given
};

int g_exIndex = -1;

SslData* DataOf(const SSL* ssl) { return static_cast<SslData*>(SSL_get_ex_data(ssl, g_exIndex)); }

bool CookieFor(const SslData* d, const unsigned char* secret, unsigned char* out, unsigned int* outLen) {
  return HMAC(EVP_sha256(), secret, static_cast<int>(kCookieSecretBytes),
              reinterpret_cast<const unsigned char*>(d->peer.data()), d->peer.size(), out, outLen) != nullptr;
}

int GenerateCookie(SSL* ssl, unsigned char* cookie, unsigned int* cookieLen) {
  const SslData* d = DataOf(ssl);
  if (d == nullptr || !d->secrets || !d->secrets->hasCurrent) return 0;
  return CookieFor(d, d->secrets->current, cookie, cookieLen) ? 1 : 0;
}

int VerifyCookie(SSL* ssl, const unsigned char* cookie, unsigned int cookieLen) {
  const SslData* d = DataOf(ssl);
  if (d == nullptr || !d->secrets || !d->secrets->hasCurrent) return 0;
  unsigned char expect[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (CookieFor(d, d->secrets->current, expect, &len) && len == cookieLen &&
      CRYPTO_memcmp(expect, cookie, len) == 0)
    return 1;
  if (d->secrets->hasPrevious && CookieFor(d, d->secrets->previous, expect, &len) && len == cookieLen &&
      CRYPTO_memcmp(expect, cookie, len) == 0)
    return 1;
  return 0;
}

void InfoCallback(const SSL* ssl, int where, int ret) {
  if ((where & SSL_CB_ALERT) == 0) return;
  SslData* d = DataOf(ssl);
  if (d == nullptr) return;
  if ((where & SSL_CB_READ) != 0)
    d->alertReceived = ret & 0xff;
  else
    d->alertSent = ret & 0xff;
}

// Builds a new SSL over a fresh datagram BIO with `data` attached. Returns nullptr on failure
// (error queue holds the reason).
SSL* NewSsl(SSL_CTX* ctx, SslData* data, long mtu) {
  SSL* ssl = SSL_new(ctx);
  if (ssl == nullptr) return nullptr;
  BIO* bio = NewDgramBio();
  if (bio == nullptr) {
    SSL_free(ssl);
    return nullptr;
  }
  SSL_set_bio(ssl, bio, bio);  // rbio == wbio: SSL takes the single reference
  SSL_set_ex_data(ssl, g_exIndex, data);
  SSL_set_info_callback(ssl, InfoCallback);
  SSL_set_mtu(ssl, mtu);
  data->mtu = mtu;
  return ssl;
}

std::vector<std::string> TakeOut(SSL* ssl) {
  std::vector<std::string> out;
  DgramState* st = StateOf(ssl);
  if (st != nullptr) out.swap(st->out);
  return out;
}

Napi::Array ToBufferArray(Napi::Env env, const std::vector<std::string>& items) {
  Napi::Array arr = Napi::Array::New(env, items.size());
  for (size_t i = 0; i < items.size(); i++) {
    arr.Set(static_cast<uint32_t>(i), Napi::Buffer<char>::Copy(env, items[i].data(), items[i].size()));
  }
  return arr;
}

std::string BufferBytes(const Napi::Value& v, const char* name) {
  if (!v.IsBuffer()) throw Napi::TypeError::New(v.Env(), std::string(name) + " must be a Buffer");
  auto b = v.As<Napi::Buffer<char>>();
  return std::string(b.Data(), b.Length());
}

long MtuFrom(const Napi::Value& v) {
  if (!v.IsNumber()) return 1400;
  long mtu = static_cast<long>(v.As<Napi::Number>().Int64Value());
  return std::clamp(mtu, kMinMtu, kMaxMtu);
}

class Session;

struct AddonData {
  Napi::FunctionReference sessionCtor;
};

// ---------------------------------------------------------------------------------------------
// Context: one SSL_CTX (server or client role) with certificate, key, trust anchors and CRLs.

class Context : public Napi::ObjectWrap<Context> {
 public:
  static Napi::Function Init(Napi::Env env) {
    return DefineClass(env, "Context", {InstanceMethod("destroy", &Context::Destroy)});
  }

  explicit Context(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Context>(info) {
    Napi::Env env = info.Env();
    if (!info[0].IsObject()) throw Napi::TypeError::New(env, "Context options must be an object");
    Napi::Object o = info[0].As<Napi::Object>();
    bool server = o.Get("server").ToBoolean().Value();
    ERR_clear_error();
    ctx_ = SSL_CTX_new(server ? DTLS_server_method() : DTLS_client_method());
    if (ctx_ == nullptr) ThrowSsl(env, "SSL_CTX_new failed");
    try {
      Configure(env, o, server);
    } catch (...) {
      SSL_CTX_free(ctx_);
      ctx_ = nullptr;
      throw;
    }
    DrainErrors();
  }

  ~Context() override { Free(); }

  SSL_CTX* ctx() const { return ctx_; }

 private:
  void Configure(Napi::Env env, const Napi::Object& o, bool server) {
    if (SSL_CTX_set_min_proto_version(ctx_, DTLS1_2_VERSION) != 1) ThrowSsl(env, "cannot require DTLS 1.2");
    // No renegotiation (RFC 7011 §11 needs none; it is an attack surface), no compression,
    // no tickets and no session cache: every association authenticates with a full handshake
    // against the trust anchors and CRLs that are current when it starts.
    SSL_CTX_set_options(ctx_, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION | SSL_OP_NO_TICKET |
                                  SSL_OP_NO_QUERY_MTU | SSL_OP_CIPHER_SERVER_PREFERENCE);
    SSL_CTX_set_session_cache_mode(ctx_, SSL_SESS_CACHE_OFF);
    std::string ciphers = kDefaultCiphers;
    if (o.Has("ciphers") && o.Get("ciphers").IsString()) ciphers = o.Get("ciphers").As<Napi::String>().Utf8Value();
    if (SSL_CTX_set_cipher_list(ctx_, ciphers.c_str()) != 1) ThrowSsl(env, "invalid cipher list");

    if (o.Has("cert") && !o.Get("cert").IsUndefined()) LoadCertChain(env, BufferBytes(o.Get("cert"), "cert"));
    if (o.Has("key") && !o.Get("key").IsUndefined()) LoadKey(env, BufferBytes(o.Get("key"), "key"));
    if (server && (SSL_CTX_get0_certificate(ctx_) == nullptr))
      throw Napi::Error::New(env, "a server context needs cert and key");

    int caCount = 0;
    if (o.Has("ca") && !o.Get("ca").IsUndefined()) caCount = LoadCa(env, BufferBytes(o.Get("ca"), "ca"), server);
    int crlCount = 0;
    if (o.Has("crl") && !o.Get("crl").IsUndefined()) crlCount = LoadCrls(env, BufferBytes(o.Get("crl"), "crl"));
    if (crlCount > 0) {
      // Leaf revocation check against the configured CRLs (RFC 5280 §6.3); a missing CRL for
      // the issuer then fails verification (X509_V_ERR_UNABLE_TO_GET_CRL) rather than passing.
      X509_STORE_set_flags(SSL_CTX_get_cert_store(ctx_), X509_V_FLAG_CRL_CHECK);
    }
    SSL_CTX_set_verify_depth(ctx_, kMaxVerifyDepth);
    if (server) {
      if (caCount == 0) throw Napi::Error::New(env, "a server context needs at least one CA certificate");
      // RFC 7011 §11: mutual authentication is a MUST; the handshake fails without a client
      // certificate that chains to a configured CA.
      SSL_CTX_set_verify(ctx_, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT | SSL_VERIFY_CLIENT_ONCE, nullptr);
      SSL_CTX_set_cookie_generate_cb(ctx_, GenerateCookie);
      SSL_CTX_set_cookie_verify_cb(ctx_, VerifyCookie);
    } else {
      SSL_CTX_set_verify(ctx_, caCount > 0 ? SSL_VERIFY_PEER : SSL_VERIFY_NONE, nullptr);
    }
  }

  void LoadCertChain(Napi::Env env, const std::string& pem) {
    BIO* b = BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size()));
    if (b == nullptr) ThrowSsl(env, "BIO_new_mem_buf");
    X509* leaf = PEM_read_bio_X509(b, nullptr, nullptr, nullptr);
    if (leaf == nullptr) {
      BIO_free(b);
      ThrowSsl(env, "cert: no PEM certificate found");
    }
    int ok = SSL_CTX_use_certificate(ctx_, leaf);
    X509_free(leaf);
    if (ok != 1) {
      BIO_free(b);
      ThrowSsl(env, "cert: certificate rejected");
    }
    X509* extra;
    while ((extra = PEM_read_bio_X509(b, nullptr, nullptr, nullptr)) != nullptr) {
      if (SSL_CTX_add0_chain_cert(ctx_, extra) != 1) {  // takes ownership on success
        X509_free(extra);
        BIO_free(b);
        ThrowSsl(env, "cert: chain certificate rejected");
      }
    }
    ERR_clear_error();  // the loop ends on the expected "no start line"
    BIO_free(b);
  }

  void LoadKey(Napi::Env env, const std::string& pem) {
    BIO* b = BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size()));
    if (b == nullptr) ThrowSsl(env, "BIO_new_mem_buf");
    EVP_PKEY* key = PEM_read_bio_PrivateKey(b, nullptr, nullptr, nullptr);
    BIO_free(b);
    // The message never includes key bytes; OpenSSL's reason string is about the format.
    if (key == nullptr) ThrowSsl(env, "key: no unencrypted PEM private key found");
    int ok = SSL_CTX_use_PrivateKey(ctx_, key);
    EVP_PKEY_free(key);
    if (ok != 1) ThrowSsl(env, "key: private key rejected");
    if (SSL_CTX_check_private_key(ctx_) != 1) ThrowSsl(env, "key: does not match the certificate");
  }

  int LoadCa(Napi::Env env, const std::string& pem, bool server) {
    BIO* b = BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size()));
    if (b == nullptr) ThrowSsl(env, "BIO_new_mem_buf");
    X509_STORE* store = SSL_CTX_get_cert_store(ctx_);
    int n = 0;
    X509* c;
    while ((c = PEM_read_bio_X509(b, nullptr, nullptr, nullptr)) != nullptr) {
      int ok = X509_STORE_add_cert(store, c);  // store takes its own reference
      if (ok == 1 && server) ok = SSL_CTX_add_client_CA(ctx_, c);  // copies the name
      X509_free(c);
      if (ok != 1) {
        BIO_free(b);
        ThrowSsl(env, "ca: certificate rejected");
      }
      n++;
    }
    ERR_clear_error();
    BIO_free(b);
    return n;
  }

  int LoadCrls(Napi::Env env, const std::string& pem) {
    BIO* b = BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size()));
    if (b == nullptr) ThrowSsl(env, "BIO_new_mem_buf");
    X509_STORE* store = SSL_CTX_get_cert_store(ctx_);
    int n = 0;
    X509_CRL* crl;
    while ((crl = PEM_read_bio_X509_CRL(b, nullptr, nullptr, nullptr)) != nullptr) {
      int ok = X509_STORE_add_crl(store, crl);
      X509_CRL_free(crl);
      if (ok != 1) {
        BIO_free(b);
        ThrowSsl(env, "crl: CRL rejected");
      }
      n++;
    }
    ERR_clear_error();
    BIO_free(b);
    if (n == 0 && !pem.empty()) throw Napi::Error::New(env, "crl: no PEM CRL found");
    return n;
  }

  void Free() {
    if (ctx_ != nullptr) {
      SSL_CTX_free(ctx_);
      ctx_ = nullptr;
    }
  }

  Napi::Value Destroy(const Napi::CallbackInfo& info) {
    Free();
    return info.Env().Undefined();
  }

  SSL_CTX* ctx_ = nullptr;
};

Context* UnwrapContext(const Napi::Value& v) {
  if (!v.IsObject()) throw Napi::TypeError::New(v.Env(), "expected a Context");
  Context* c = Napi::ObjectWrap<Context>::Unwrap(v.As<Napi::Object>());
  if (c == nullptr || c->ctx() == nullptr) throw Napi::Error::New(v.Env(), "Context is destroyed");
  return c;
}

// ---------------------------------------------------------------------------------------------
// Session: one DTLS association (server side after the cookie exchange, or a client).

struct SessionInit {
  SSL* ssl;
  std::unique_ptr<SslData> data;
};

enum SessionState : int { kHandshake = 0, kOpen = 1, kClosed = 2, kFailed = 3 };

class Session : public Napi::ObjectWrap<Session> {
 public:
  static Napi::Function Init(Napi::Env env) {
    return DefineClass(env, "Session",
                       {
                           InstanceMethod("feed", &Session::Feed),
                           InstanceMethod("advance", &Session::Advance),
                           InstanceMethod("write", &Session::Write),
                           InstanceMethod("timeoutMs", &Session::TimeoutMs),
                           InstanceMethod("handleTimeout", &Session::HandleTimeout),
                           InstanceMethod("shutdown", &Session::Shutdown),
                           InstanceMethod("peerCertificate", &Session::PeerCertificate),
                           InstanceMethod("info", &Session::Info),
                           InstanceMethod("recordOverhead", &Session::RecordOverhead),
                           InstanceMethod("destroy", &Session::Destroy),
                       });
  }

  // new Session(External<SessionInit>)            — from Listener (server, after cookie)
  // new Session(Context, peerKey: string, mtu?)   — client role
  explicit Session(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Session>(info) {
    Napi::Env env = info.Env();
    if (info[0].IsExternal()) {
      SessionInit* init = info[0].As<Napi::External<SessionInit>>().Data();
      ssl_ = init->ssl;
      data_ = std::move(init->data);
      init->ssl = nullptr;
      SSL_set_ex_data(ssl_, g_exIndex, data_.get());
      return;
    }
    Context* c = UnwrapContext(info[0]);
    data_ = std::make_unique<SslData>();
    if (info[1].IsString()) data_->peer = info[1].As<Napi::String>().Utf8Value();
    ERR_clear_error();
    ssl_ = NewSsl(c->ctx(), data_.get(), MtuFrom(info[2]));
    if (ssl_ == nullptr) ThrowSsl(env, "SSL_new failed");
    SSL_set_connect_state(ssl_);
  }

  ~Session() override { Free(); }

 private:
  void Free() {
    if (ssl_ != nullptr) {
      SSL_free(ssl_);  // frees the BIO and drops the SSL_CTX reference
      ssl_ = nullptr;
    }
    data_.reset();
    state_ = state_ == kOpen || state_ == kHandshake ? kClosed : state_;
  }

  void RequireSsl(Napi::Env env) {
    if (ssl_ == nullptr) throw Napi::Error::New(env, "session is destroyed");
  }

  Napi::Object Result(Napi::Env env, const std::vector<std::string>& data, bool justOpened, const SslError& err) {
    Napi::Object r = Napi::Object::New(env);
    r.Set("out", ToBufferArray(env, TakeOut(ssl_)));
    r.Set("data", ToBufferArray(env, data));
    r.Set("state", Napi::Number::New(env, state_));
    r.Set("opened", Napi::Boolean::New(env, justOpened));
    if (err.code != 0) {
      r.Set("errorLib", Napi::Number::New(env, ERR_GET_LIB(err.code)));
      r.Set("errorReason", Napi::Number::New(env, ERR_GET_REASON(err.code)));
      r.Set("errorText", Napi::String::New(env, err.text));
    }
    r.Set("verifyResult", Napi::Number::New(env, static_cast<double>(SSL_get_verify_result(ssl_))));
    if (data_) {
      r.Set("alertSent", Napi::Number::New(env, data_->alertSent));
      r.Set("alertReceived", Napi::Number::New(env, data_->alertReceived));
    }
    return r;
  }

  // Advances the handshake and reads application records. Caller has cleared the error queue.
  void Pump(std::vector<std::string>& data, bool& justOpened, SslError& err) {
    if (state_ == kHandshake) {
      int r = SSL_do_handshake(ssl_);
      if (r == 1) {
        state_ = kOpen;
        justOpened = true;
      } else {
        int e = SSL_get_error(ssl_, r);
        if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) {
          state_ = kFailed;
          err = DrainErrors();
          if (err.text.empty()) err.text = "SSL_do_handshake failed, SSL_get_error " + std::to_string(e);
          return;
        }
      }
    }
    if (state_ != kOpen) return;
    char buf[kReadBufferBytes];
    for (;;) {
      int n = SSL_read(ssl_, buf, sizeof buf);
      if (n > 0) {
        data.emplace_back(buf, static_cast<size_t>(n));
        continue;
      }
      int e = SSL_get_error(ssl_, n);
      if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) break;
      if (e == SSL_ERROR_ZERO_RETURN) {
        // close_notify received (RFC 5246 §7.2.1): answer with our own and end.
        SSL_shutdown(ssl_);
        state_ = kClosed;
      } else {
        state_ = kFailed;
        err = DrainErrors();
        if (err.text.empty()) err.text = "SSL_read failed, SSL_get_error " + std::to_string(e);
      }
      break;
    }
  }

  Napi::Value Feed(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    RequireSsl(env);
    if (!info[0].IsBuffer()) throw Napi::TypeError::New(env, "datagram must be a Buffer");
    auto b = info[0].As<Napi::Buffer<char>>();
    std::vector<std::string> data;
    bool justOpened = false;
    SslError err;
    ERR_clear_error();
    if (state_ == kHandshake || state_ == kOpen) {
      DgramState* st = StateOf(ssl_);
      st->in.assign(b.Data(), b.Length());
      st->hasIn = true;
      Pump(data, justOpened, err);
      st->in.clear();  // anything OpenSSL did not consume belongs to this datagram only
      st->hasIn = false;
    }
    SslError rest = DrainErrors();
    if (err.code == 0) err = rest;
    if (state_ == kOpen || state_ == kHandshake) err = SslError();  // non-fatal noise (dropped record)
    return Result(env, data, justOpened, err);
  }

  Napi::Value Advance(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    RequireSsl(env);
    std::vector<std::string> data;
    bool justOpened = false;
    SslError err;
    ERR_clear_error();
    Pump(data, justOpened, err);
    DrainErrors();
    return Result(env, data, justOpened, err);
  }

  Napi::Value Write(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    RequireSsl(env);
    if (state_ != kOpen) throw Napi::Error::New(env, "session is not open");
    if (!info[0].IsBuffer()) throw Napi::TypeError::New(env, "record must be a Buffer");
    auto b = info[0].As<Napi::Buffer<char>>();
    ERR_clear_error();
    // One SSL_write = one DTLS record = one datagram (RFC 6347 §4.1.1).
    int n = SSL_write(ssl_, b.Data(), static_cast<int>(b.Length()));
    if (n <= 0) {
      int e = SSL_get_error(ssl_, n);
      SslError err = DrainErrors();
      if (e != SSL_ERROR_WANT_WRITE && e != SSL_ERROR_WANT_READ)
        throw Napi::Error::New(env, "DTLS write failed: " + err.text);
    }
    DrainErrors();
    return ToBufferArray(env, TakeOut(ssl_));
  }

  Napi::Value TimeoutMs(const Napi::CallbackInfo& info) {
    if (ssl_ == nullptr) return Napi::Number::New(info.Env(), -1);
    struct timeval tv;
    ERR_clear_error();
    long r = DTLSv1_get_timeout(ssl_, &tv);
    DrainErrors();
    if (r != 1) return Napi::Number::New(info.Env(), -1);
    double ms = static_cast<double>(tv.tv_sec) * 1000.0 + static_cast<double>(tv.tv_usec) / 1000.0;
    return Napi::Number::New(info.Env(), ms);
  }

  Napi::Value HandleTimeout(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    RequireSsl(env);
    std::vector<std::string> data;
    SslError err;
    ERR_clear_error();
    if (state_ == kHandshake) {
      // Retransmits the last flight (RFC 6347 §4.2.4); -1 once OpenSSL gives up.
      if (DTLSv1_handle_timeout(ssl_) < 0) {
        state_ = kFailed;
        err = DrainErrors();
      }
    }
    DrainErrors();
    return Result(env, data, false, err);
  }

  Napi::Value Shutdown(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (ssl_ == nullptr) return Napi::Array::New(env, 0);
    ERR_clear_error();
    if (state_ == kOpen) SSL_shutdown(ssl_);  // sends close_notify; we do not wait for the reply
    DrainErrors();
    state_ = state_ == kFailed ? kFailed : kClosed;
    return ToBufferArray(env, TakeOut(ssl_));
  }

  Napi::Value PeerCertificate(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (ssl_ == nullptr) return env.Null();
    X509* cert = SSL_get0_peer_certificate(ssl_);
    if (cert == nullptr) return env.Null();
    int len = i2d_X509(cert, nullptr);
    if (len <= 0) {
      DrainErrors();
      return env.Null();
    }
    Napi::Buffer<unsigned char> out = Napi::Buffer<unsigned char>::New(env, static_cast<size_t>(len));
    unsigned char* p = out.Data();
    i2d_X509(cert, &p);
    return out;
  }

  Napi::Value Info(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Napi::Object o = Napi::Object::New(env);
    o.Set("state", Napi::Number::New(env, state_));
    if (ssl_ != nullptr) {
      o.Set("protocol", Napi::String::New(env, SSL_get_version(ssl_)));
      const char* cipher = SSL_get_cipher_name(ssl_);
      o.Set("cipher", Napi::String::New(env, cipher == nullptr ? "" : cipher));
    }
    return o;
  }

  // Bytes a protected record body carries beyond its plaintext with the negotiated cipher
  // (explicit nonce + AEAD tag: 24 for AES-GCM, 16 for ChaCha20-Poly1305), or -1 before a
  // cipher is set. A shorter epoch-1 record cannot be genuine; OpenSSL 3.0 treats some of
  // those as fatal instead of discarding them, so JS drops them first.
  Napi::Value RecordOverhead(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (ssl_ == nullptr || data_ == nullptr || SSL_get_current_cipher(ssl_) == nullptr) return Napi::Number::New(env, -1);
    ERR_clear_error();
    size_t payload = DTLS_get_data_mtu(ssl_);
    DrainErrors();
    long overhead = data_->mtu - DTLS1_RT_HEADER_LENGTH - static_cast<long>(payload);
    if (payload == 0 || overhead < 0) return Napi::Number::New(env, -1);
    return Napi::Number::New(env, static_cast<double>(overhead));
  }

  Napi::Value Destroy(const Napi::CallbackInfo& info) {
    Free();
    return info.Env().Undefined();
  }

  SSL* ssl_ = nullptr;
  std::unique_ptr<SslData> data_;
  SessionState state_ = kHandshake;
};

// ---------------------------------------------------------------------------------------------
// Listener: the stateless cookie exchange (RFC 6347 §4.2.1) on one shared SSL. A datagram
// from an unknown peer goes through DTLSv1_listen: a ClientHello without a valid cookie gets
// a HelloVerifyRequest and leaves no state behind; one with a valid cookie promotes the
// listening SSL to a Session and a fresh listening SSL takes its place.

class Listener : public Napi::ObjectWrap<Listener> {
 public:
  static Napi::Function Init(Napi::Env env) {
    return DefineClass(env, "Listener",
                       {
                           InstanceMethod("setCookieSecret", &Listener::SetCookieSecret),
                           InstanceMethod("setContext", &Listener::SetContext),
                           InstanceMethod("handle", &Listener::Handle),
                           InstanceMethod("destroy", &Listener::Destroy),
                       });
  }

  // new Listener(Context, mtu)
  explicit Listener(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Listener>(info) {
    Napi::Env env = info.Env();
    secrets_ = std::make_shared<CookieSecrets>();
    mtu_ = MtuFrom(info[1]);
    addr_ = BIO_ADDR_new();
    if (addr_ == nullptr) ThrowSsl(env, "BIO_ADDR_new");
    Replace(env, UnwrapContext(info[0])->ctx());
  }

  ~Listener() override { Free(); }

 private:
  void Replace(Napi::Env env, SSL_CTX* ctx) {
    ERR_clear_error();
    if (SSL_CTX_up_ref(ctx) != 1) ThrowSsl(env, "SSL_CTX_up_ref");
    FreeListenSsl();
    if (ctx_ != nullptr) SSL_CTX_free(ctx_);
    ctx_ = ctx;
    NewListenSsl(env);
  }

  void NewListenSsl(Napi::Env env) {
    auto data = std::make_unique<SslData>();
    data->secrets = secrets_;
    SSL* ssl = NewSsl(ctx_, data.get(), mtu_);
    if (ssl == nullptr) ThrowSsl(env, "SSL_new failed");
    SSL_set_accept_state(ssl);
    listenSsl_ = ssl;
    listenData_ = std::move(data);
  }

  void FreeListenSsl() {
    if (listenSsl_ != nullptr) {
      SSL_free(listenSsl_);
      listenSsl_ = nullptr;
    }
    listenData_.reset();
  }

  void Free() {
    FreeListenSsl();
    if (ctx_ != nullptr) {
      SSL_CTX_free(ctx_);
      ctx_ = nullptr;
    }
    if (addr_ != nullptr) {
      BIO_ADDR_free(addr_);
      addr_ = nullptr;
    }
  }

  Napi::Value SetCookieSecret(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    std::string s = BufferBytes(info[0], "secret");
    if (s.size() != kCookieSecretBytes) throw Napi::RangeError::New(env, "cookie secret must be 32 bytes");
    if (secrets_->hasCurrent) {
      std::memcpy(secrets_->previous, secrets_->current, kCookieSecretBytes);
      secrets_->hasPrevious = true;
    }
    std::memcpy(secrets_->current, s.data(), kCookieSecretBytes);
    secrets_->hasCurrent = true;
    OPENSSL_cleanse(&s[0], s.size());
    return env.Undefined();
  }

  Napi::Value SetContext(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (ctx_ == nullptr) throw Napi::Error::New(env, "listener is destroyed");
    Replace(env, UnwrapContext(info[0])->ctx());
    DrainErrors();
    return env.Undefined();
  }

  // handle(datagram, peerKey) → { kind: 0 dropped | 1 verify-request | 2 accepted, out, session? }
  Napi::Value Handle(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (listenSsl_ == nullptr) throw Napi::Error::New(env, "listener is destroyed");
    if (!info[0].IsBuffer() || !info[1].IsString()) throw Napi::TypeError::New(env, "handle(datagram, peerKey)");
    auto b = info[0].As<Napi::Buffer<char>>();
    listenData_->peer = info[1].As<Napi::String>().Utf8Value();
    DgramState* st = StateOf(listenSsl_);
    st->in.assign(b.Data(), b.Length());
    st->hasIn = true;
    ERR_clear_error();
    int r = DTLSv1_listen(listenSsl_, addr_);
    st->in.clear();
    st->hasIn = false;
    DrainErrors();
    Napi::Object res = Napi::Object::New(env);
    std::vector<std::string> out = TakeOut(listenSsl_);
    if (r == 1) {
      // Cookie verified: the listening SSL now holds the buffered ClientHello and becomes the
      // association. Its SslData moves with it (the cookie is re-checked by SSL_accept).
      SessionInit init{listenSsl_, std::move(listenData_)};
      listenSsl_ = nullptr;
      AddonData* ad = env.GetInstanceData<AddonData>();
      Napi::Object session;
      try {
        session = ad->sessionCtor.New({Napi::External<SessionInit>::New(env, &init)});
      } catch (...) {
        if (init.ssl != nullptr) SSL_free(init.ssl);
        NewListenSsl(env);
        throw;
      }
      NewListenSsl(env);
      res.Set("kind", Napi::Number::New(env, 2));
      res.Set("session", session);
    } else {
      // r == 0: HelloVerifyRequest written (out non-empty) or datagram discarded; r < 0: a
      // fatal error on the listening SSL, which is then replaced so the next peer is unaffected.
      res.Set("kind", Napi::Number::New(env, out.empty() ? 0 : 1));
      if (r < 0) {
        FreeListenSsl();
        NewListenSsl(env);
      }
    }
    res.Set("out", ToBufferArray(env, out));
    return res;
  }

  Napi::Value Destroy(const Napi::CallbackInfo& info) {
    Free();
    return info.Env().Undefined();
  }

  SSL_CTX* ctx_ = nullptr;
  SSL* listenSsl_ = nullptr;
  std::unique_ptr<SslData> listenData_;
  std::shared_ptr<CookieSecrets> secrets_;
  BIO_ADDR* addr_ = nullptr;
  long mtu_ = 1400;
};

// ---------------------------------------------------------------------------------------------

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  // The headers we compiled against must describe the OpenSSL the node binary carries:
  // struct layouts and macros differ across minor releases.
  unsigned long runtime = OpenSSL_version_num();
  if ((runtime >> 20) != (static_cast<unsigned long>(OPENSSL_VERSION_NUMBER) >> 20)) {
    throw Napi::Error::New(env, std::string("OpenSSL version mismatch: built against ") + OPENSSL_VERSION_TEXT +
                                    ", node provides " + OpenSSL_version(OPENSSL_VERSION));
  }
  // Process-wide, once: worker threads may load the addon concurrently (one env each).
  static std::once_flag once;
  std::call_once(once, [] {
    BIO_METHOD* m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "sealflow datagram");
    if (m != nullptr && BIO_meth_set_write(m, DgramWrite) == 1 && BIO_meth_set_read(m, DgramRead) == 1 &&
        BIO_meth_set_puts(m, DgramPuts) == 1 && BIO_meth_set_ctrl(m, DgramCtrl) == 1 &&
        BIO_meth_set_create(m, DgramCreate) == 1 && BIO_meth_set_destroy(m, DgramDestroy) == 1) {
      g_dgramMethod = m;  // process lifetime: shared by every instance of the addon
    } else if (m != nullptr) {
      BIO_meth_free(m);
    }
    g_exIndex = SSL_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
  });
  if (g_dgramMethod == nullptr) ThrowSsl(env, "BIO_meth_new");
  if (g_exIndex < 0) ThrowSsl(env, "SSL_get_ex_new_index");
  auto* ad = new AddonData();
  Napi::Function sessionCtor = Session::Init(env);
  ad->sessionCtor = Napi::Persistent(sessionCtor);
  env.SetInstanceData<AddonData>(ad);

  exports.Set("Context", Context::Init(env));
  exports.Set("Listener", Listener::Init(env));
  exports.Set("Session", sessionCtor);
  exports.Set("opensslVersion", Napi::String::New(env, OpenSSL_version(OPENSSL_VERSION)));
  Napi::Object reasons = Napi::Object::New(env);
  reasons.Set("peerDidNotReturnCertificate", Napi::Number::New(env, SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE));
  reasons.Set("certificateVerifyFailed", Napi::Number::New(env, SSL_R_CERTIFICATE_VERIFY_FAILED));
  reasons.Set("unsupportedProtocol", Napi::Number::New(env, SSL_R_UNSUPPORTED_PROTOCOL));
  reasons.Set("versionTooLow", Napi::Number::New(env, SSL_R_VERSION_TOO_LOW));
  reasons.Set("wrongVersionNumber", Napi::Number::New(env, SSL_R_WRONG_VERSION_NUMBER));
  reasons.Set("noSharedCipher", Napi::Number::New(env, SSL_R_NO_SHARED_CIPHER));
  reasons.Set("readTimeoutExpired", Napi::Number::New(env, SSL_R_READ_TIMEOUT_EXPIRED));
  exports.Set("reasons", reasons);
  Napi::Object verify = Napi::Object::New(env);
  verify.Set("ok", Napi::Number::New(env, X509_V_OK));
  verify.Set("certHasExpired", Napi::Number::New(env, X509_V_ERR_CERT_HAS_EXPIRED));
  verify.Set("certNotYetValid", Napi::Number::New(env, X509_V_ERR_CERT_NOT_YET_VALID));
  verify.Set("certRevoked", Napi::Number::New(env, X509_V_ERR_CERT_REVOKED));
  verify.Set("unableToGetIssuerCertLocally", Napi::Number::New(env, X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY));
  verify.Set("unableToGetIssuerCert", Napi::Number::New(env, X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT));
  verify.Set("depthZeroSelfSigned", Napi::Number::New(env, X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT));
  verify.Set("selfSignedInChain", Napi::Number::New(env, X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN));
  verify.Set("unableToVerifyLeafSignature", Napi::Number::New(env, X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE));
  verify.Set("certSignatureFailure", Napi::Number::New(env, X509_V_ERR_CERT_SIGNATURE_FAILURE));
  verify.Set("unableToGetCrl", Napi::Number::New(env, X509_V_ERR_UNABLE_TO_GET_CRL));
  verify.Set("crlHasExpired", Napi::Number::New(env, X509_V_ERR_CRL_HAS_EXPIRED));
  verify.Set("invalidPurpose", Napi::Number::New(env, X509_V_ERR_INVALID_PURPOSE));
  exports.Set("verifyErrors", verify);
  return exports;
}

}  // namespace

NODE_API_MODULE(sealflow_dtls, Init)
