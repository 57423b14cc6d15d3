// @viewersession/web: the browser client of the Viewer Session Service.
export {
  ViewerSession,
  newTransport,
  timelineEntry,
  REDIAL_ACK_TIMEOUT,
  REDIAL_NETWORK_CHANGE,
  REDIAL_STREAM_ERROR,
  REDIAL_WATCH_BEHIND,
  type IceServerInit,
  type Protocol,
  type TimelineEntry,
  type ViewerSessionEvents,
  type ViewerSessionOptions,
} from "./session";
export { ViewerSessionError, DOMAIN, LIBRARY_REASONS, errorInfo, type ErrorInfo } from "./errors";
export type { MediaStats } from "./media";
export { ViewerSessionService } from "./gen/viewersession/v1/service_pb";
