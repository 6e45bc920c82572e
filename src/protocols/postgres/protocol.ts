/**
 * Named bytes of the PostgreSQL frontend/backend protocol, version 3.0 and 3.2
 * (https://www.postgresql.org/docs/current/protocol-message-formats.html).
 *
 * After the untyped startup packet, every message is one type byte followed by an Int32 length
 * that counts itself and the body but not the type byte. Several type bytes mean different
 * messages in each direction (0x44 is Describe from the client and DataRow from the server), so a
 * reader must always know which side it is reading.
 */

/** Type bytes of messages sent by the client. */
export const enum FrontendMessage {
  Bind = 0x42 /* B */,
  Close = 0x43 /* C */,
  CopyData = 0x64 /* d */,
  CopyDone = 0x63 /* c */,
  CopyFail = 0x66 /* f */,
  Describe = 0x44 /* D */,
  Execute = 0x45 /* E */,
  Flush = 0x48 /* H */,
  FunctionCall = 0x46 /* F */,
  Parse = 0x50 /* P */,
  /** Also GSSResponse, SASLInitialResponse and SASLResponse: the meaning depends on the auth exchange. */
  Password = 0x70 /* p */,
  Query = 0x51 /* Q */,
  Sync = 0x53 /* S */,
  Terminate = 0x58 /* X */,
}

/** Type bytes of messages sent by the server. */
export const enum BackendMessage {
  Authentication = 0x52 /* R */,
  BackendKeyData = 0x4b /* K */,
  BindComplete = 0x32 /* 2 */,
  CloseComplete = 0x33 /* 3 */,
  CommandComplete = 0x43 /* C */,
  CopyBothResponse = 0x57 /* W */,
  CopyData = 0x64 /* d */,
  CopyDone = 0x63 /* c */,
  CopyInResponse = 0x47 /* G */,
  CopyOutResponse = 0x48 /* H */,
  DataRow = 0x44 /* D */,
  EmptyQueryResponse = 0x49 /* I */,
  ErrorResponse = 0x45 /* E */,
  FunctionCallResponse = 0x56 /* V */,
  NegotiateProtocolVersion = 0x76 /* v */,
  NoData = 0x6e /* n */,
  NoticeResponse = 0x4e /* N */,
  NotificationResponse = 0x41 /* A */,
  ParameterDescription = 0x74 /* t */,
  ParameterStatus = 0x53 /* S */,
  ParseComplete = 0x31 /* 1 */,
  PortalSuspended = 0x73 /* s */,
  ReadyForQuery = 0x5a /* Z */,
  RowDescription = 0x54 /* T */,
}

/** The Int32 that opens the body of every Authentication (`R`) message. */
export const enum AuthenticationType {
  Ok = 0,
  CleartextPassword = 3,
  /** Followed by a 4-byte salt. */
  MD5Password = 5,
  /** Followed by the mechanism names, each NUL-terminated, then an empty name. */
  SASL = 10,
  /** Followed by the server-first-message. */
  SASLContinue = 11,
  /** Followed by the server-final-message. */
  SASLFinal = 12,
}

/** Field codes of ErrorResponse and NoticeResponse; each is followed by a NUL-terminated value. */
export const enum ErrorField {
  /** Localized severity. */
  Severity = 0x53 /* S */,
  /** Severity, never localized (9.6+). */
  SeverityV = 0x56 /* V */,
  /** SQLSTATE. */
  Code = 0x43 /* C */,
  Message = 0x4d /* M */,
  Detail = 0x44 /* D */,
  Hint = 0x48 /* H */,
  Position = 0x50 /* P */,
  InternalPosition = 0x70 /* p */,
  InternalQuery = 0x71 /* q */,
  Where = 0x57 /* W */,
  Schema = 0x73 /* s */,
  Table = 0x74 /* t */,
  Column = 0x63 /* c */,
  DataType = 0x64 /* d */,
  Constraint = 0x6e /* n */,
  File = 0x46 /* F */,
  Line = 0x4c /* L */,
  Routine = 0x52 /* R */,
}

/** The transaction status byte of ReadyForQuery. */
export const enum TransactionStatus {
  Idle = 0x49 /* I */,
  InTransaction = 0x54 /* T */,
  Failed = 0x45 /* E */,
}

/** Format codes of Bind, RowDescription, COPY responses and FunctionCall. */
export const enum FormatCode {
  Text = 0,
  Binary = 1,
}

/** Protocol 3.0: `major << 16 | minor`, the code of a StartupMessage. */
export const PROTOCOL_3_0 = 196608
/** Protocol 3.2 (PostgreSQL 18): variable-length cancel keys. */
export const PROTOCOL_3_2 = 196610
/** Code of an SSLRequest: 1234 << 16 | 5679. */
export const SSL_REQUEST_CODE = 80877103
/** Code of a GSSENCRequest: 1234 << 16 | 5680. */
export const GSSENC_REQUEST_CODE = 80877104
/** Code of a CancelRequest: 1234 << 16 | 5678. */
export const CANCEL_REQUEST_CODE = 80877102

/** Cancel keys are 4 bytes in protocol 3.0 and 4..256 bytes in 3.2. */
export const MIN_CANCEL_KEY_LENGTH = 4
export const MAX_CANCEL_KEY_LENGTH = 256
