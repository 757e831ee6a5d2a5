import type { Socket } from 'node:net'
import type { FastifyReply, FastifyRequest } from 'fastify'
import { errorCodes, toErrorResponse, type ErrorCode } from '../errors.js'

/**
 * Errors Fastify raises before routing (a URL it cannot decode, a path parameter longer than any id): answered
 * with the error body like every other error, never quoting the URL back.
 */
export function frameworkErrors (error: Error, _req: FastifyRequest, reply: FastifyReply): void {
  const { statusCode, body } = toErrorResponse(error)
  void reply.code(statusCode).type('application/json; charset=utf-8').send(body)
}

/**
 * Errors Node's HTTP parser raises before Fastify sees a request (headers too large, a broken message): the
 * socket gets a complete HTTP response with the error body, then is closed.
 */
export function clientErrorHandler (err: Error & { code?: string }, socket: Socket): void {
  if (!socket.writable) { socket.destroy(); return }
  const code: ErrorCode = err.code === 'HPE_HEADER_OVERFLOW' ? 'HEADERS_TOO_LARGE' : 'BAD_REQUEST'
  const status = errorCodes[code].status
  const body = JSON.stringify({ error: { code, message: errorCodes[code].meaning } })
  const reason = code === 'HEADERS_TOO_LARGE' ? 'Request Header Fields Too Large' : 'Bad Request'
  socket.end(`HTTP/1.1 ${status} ${reason}\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`)
}
